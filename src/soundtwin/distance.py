"""How embeddings are compared: one object per distance, which knows its own direction.

Every score soundtwin reports is "higher = more alike": cosine similarity of unit vectors, or minus
the Euclidean distance. Code that compares embeddings asks the model's :class:`Distance` (from
:func:`get_distance`) instead of branching on its name.

>>> d = get_distance("cosine")
>>> float(d.score(np.array([1.0, 0.0]), np.array([0.0, 1.0]))[0])
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

# numpy is imported inside the functions: the config checks distance names without loading it

#: How a class is scored against a query: against the class's centroid ("mean"), its best exemplar
#: ("max"), or the mean of its :data:`TOPK` best exemplars ("topk").
SCORINGS = ("mean", "max", "topk")
TOPK = 3


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (a zero row stays zero)."""
    import numpy as np

    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Distance:
    """Compares embeddings; subclasses define :meth:`score` and :meth:`pairwise`."""

    name: str = ""
    #: Embeddings are unit-normalised by the encoder's runtime before they are compared.
    normalizes: bool = False

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Row-wise scores of two equally long sets of embeddings (or one against many), higher = more alike."""
        raise NotImplementedError

    def pairwise(self, queries: np.ndarray, items: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``(n_queries, n_items)`` scores."""
        raise NotImplementedError

    def centroid(self, emb: np.ndarray) -> np.ndarray:
        """The one embedding that stands for a class: the mean of its rows."""
        return emb.mean(0)

    def class_scores(self, queries: np.ndarray, emb: np.ndarray, labels: Sequence[str] | np.ndarray,
                     classes: Sequence[str], scoring: str = "mean") -> np.ndarray:
        """``(n_queries, n_classes)`` scores of queries against the classes of labelled embeddings."""
        import numpy as np

        if scoring not in SCORINGS:
            raise ConfigError(f"scoring {scoring!r} is not one of {', '.join(SCORINGS)}")
        queries, labels = np.atleast_2d(queries), np.asarray(labels)
        sims = None if scoring == "mean" else self.pairwise(queries, emb)
        out = np.empty((len(queries), len(classes)), dtype=np.float64)
        for c, name in enumerate(classes):
            idx = np.flatnonzero(labels == name)
            if scoring == "mean":
                out[:, c] = self.pairwise(queries, self.centroid(emb[idx])[None])[:, 0]
            elif scoring == "max":
                out[:, c] = sims[:, idx].max(1)  # type: ignore[index]
            else:
                k = min(TOPK, len(idx))
                out[:, c] = np.sort(sims[:, idx], axis=1)[:, -k:].mean(1)  # type: ignore[index]
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Cosine(Distance):
    """Cosine similarity of unit-length embeddings (the runtime normalises them), in [-1, 1]."""

    name, normalizes = "cosine", True

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import numpy as np

        a, b = np.atleast_2d(a), np.atleast_2d(b)
        return np.sum(a * b, axis=-1)

    def pairwise(self, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.atleast_2d(queries) @ np.atleast_2d(items).T

    def centroid(self, emb: np.ndarray) -> np.ndarray:
        """The mean direction: the unit vector along the rows' mean."""
        return unit(emb.mean(0))


class Euclidean(Distance):
    """Minus the Euclidean distance (the tutorial's), with a floor of 1e-7 under the squared distance."""

    name = "euclidean"

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import numpy as np

        a, b = np.atleast_2d(a), np.atleast_2d(b)
        return -np.sqrt(np.maximum(np.sum((a - b) ** 2, axis=-1), 1e-7))

    def pairwise(self, queries: np.ndarray, items: np.ndarray) -> np.ndarray:
        import numpy as np

        q, x = np.atleast_2d(queries), np.atleast_2d(items)
        return -np.sqrt(np.maximum(((q[:, None, :] - x[None]) ** 2).sum(-1), 1e-7))


DISTANCES: dict[str, Distance] = {d.name: d for d in (Cosine(), Euclidean())}


def get_distance(name: str) -> Distance:
    """The distance called ``name`` (``model.distance`` in the config)."""
    try:
        return DISTANCES[name]
    except KeyError:
        raise ConfigError(f"distance {name!r} is not one of {', '.join(DISTANCES)}") from None
