"""What one training step sees: random crops, padded batches, batches of similar length, label-balanced
batches, and the pairs of a pair loss. Every draw comes from a generator passed in (no global state)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..data import sample_pairs
from ..runtime.base import pad_batch


def to_tensors(feats: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded ``(batch, n_features, max T)`` float32 and lengths, as (CPU) tensors."""
    x, lengths = pad_batch(feats)
    return torch.from_numpy(x), torch.from_numpy(lengths)


def crop(feat: np.ndarray, n: int, rng: np.random.Generator, candidates: int = 1) -> np.ndarray:
    """A random ``n``-frame crop of ``feat`` (the whole clip if shorter); with several candidates,
    the one with the most energy (log-mel features: the largest mean of exp)."""
    t = feat.shape[-1]
    if t <= n:
        return feat
    starts = rng.integers(0, t - n + 1, size=candidates)
    if candidates > 1:
        energy = np.exp(feat).mean(0)
        csum = np.concatenate([[0.0], np.cumsum(energy)])
        starts = starts[[int(np.argmax(csum[starts + n] - csum[starts]))]]
    s = int(starts[0])
    return feat[:, s : s + n]


def bucketed(pool: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of clips of similar length (less padding), in shuffled order. ``lengths[i]`` is
    clip ``i``'s number of frames; ``pool`` lists the clips of the epoch (a clip may appear several times)."""
    order = rng.permutation(pool)
    lens = lengths[order]
    batches = []
    for k in range(0, len(order), 8 * batch_size):
        chunk = order[k:k + 8 * batch_size]
        chunk = chunk[np.argsort(lens[k:k + 8 * batch_size], kind="stable")]
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@contextlib.contextmanager
def _sampler_random(seed: int) -> Iterator[None]:
    """pytorch-metric-learning's samplers draw from a module-level generator (numpy's global one by
    default); for the ``with`` body it is a private generator seeded here, so no global state changes."""
    from pytorch_metric_learning.utils import common_functions as c_f

    saved = c_f.NUMPY_RANDOM
    c_f.NUMPY_RANDOM = np.random.RandomState(seed)
    try:
        yield
    finally:
        c_f.NUMPY_RANDOM = saved


def balanced(pool: np.ndarray, labels: np.ndarray, batch_size: int, per_class: int,
             rng: np.random.Generator) -> list[np.ndarray]:
    """Label-balanced batches from pytorch-metric-learning's MPerClassSampler: ``m`` clips of each of
    ``batch_size / m`` classes, so every anchor has positives to mine (``m`` grows when classes are few)."""
    from pytorch_metric_learning.samplers import MPerClassSampler

    pool_labels = labels[pool]
    n_classes = len(np.unique(pool_labels))
    m = max(per_class, -(-batch_size // n_classes))
    bs = max(m, (batch_size // m) * m)
    with _sampler_random(int(rng.integers(2**31))):
        sampler = MPerClassSampler(pool_labels, m, batch_size=bs, length_before_new_iter=len(pool_labels))
        order = pool[np.fromiter(iter(sampler), dtype=np.int64)]
    return [order[k:k + bs] for k in range(0, len(order), bs)]


def epoch_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator, *, fixed_seed: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An epoch's pairs ``(i, j, y)`` (positions in ``labels``) for a pair loss: drawn afresh from ``rng``,
    or, with ``fixed_seed``, the same pairs every epoch (the tutorial builds its pair array once and Keras
    shuffles it every epoch; the draw depends on the seed alone, so a resumed run trains on the same pairs)."""
    if fixed_seed is None:
        return sample_pairs(labels, n_pairs, rng)
    ii, jj, yy = sample_pairs(labels, n_pairs, np.random.default_rng([fixed_seed, 2**20]))
    order = rng.permutation(len(ii))
    return ii[order], jj[order], yy[order]
