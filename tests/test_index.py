import numpy as np
import pytest

from soundtwin.errors import MissingExtraError
from soundtwin.gallery import Gallery
from soundtwin.index import ExactIndex, HNSWIndex, IVFIndex, build_index


def clustered(n_classes=200, per=10, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[np.repeat(np.arange(n_classes), per)] + 0.05 * rng.standard_normal((n_classes * per, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), centres.astype(np.float32)


def test_exact_index_is_brute_force_top_k():
    x, c = clustered()
    scores, ids = ExactIndex(x).search(c[:7], 5)
    sims = c[:7] @ x.T
    for q in range(7):
        expect = np.argsort(-sims[q])[:5]
        assert list(ids[q]) == list(expect)
        np.testing.assert_allclose(scores[q], sims[q, expect], rtol=1e-6)
    assert ExactIndex(x[:3]).search(c[:1], 10)[1].shape == (1, 3)  # k beyond the size: all rows


@pytest.mark.parametrize("kind", [IVFIndex, HNSWIndex])
def test_approximate_indexes_find_the_true_nearest(kind):
    x, c = clustered()
    q = c[:50]
    exact = ExactIndex(x).search(q, 5)[1]
    got = kind(x).search(q, 5)[1]
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact, got)])
    assert recall >= 0.95 and len(kind(x)) == len(x)


def test_build_index_switches_at_exact_max():
    x, _ = clustered(n_classes=20)
    assert isinstance(build_index(x, exact_max=len(x)), ExactIndex)
    assert isinstance(build_index(x, exact_max=len(x) - 1), IVFIndex)


def test_missing_faiss_names_the_index_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "faiss" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'soundtwin\[index\]'"):
        IVFIndex(clustered(n_classes=20)[0])


@pytest.mark.parametrize("scoring", ["mean", "max"])
def test_large_gallery_uses_index_and_agrees_with_exact(trained, tmp_path, scoring):
    from soundtwin.runtime.torch_runtime import Verifier

    rng = np.random.default_rng(0)
    v = Verifier.load(trained[0], cache_dir=False)
    d = v.cfg.model.embedding_dim
    centres = rng.standard_normal((300, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(300), 10)
    emb = centres[labels] + 0.05 * rng.standard_normal((3000, d))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    g = Gallery(tmp_path / "big", v, scoring=scoring)
    for c in range(300):
        g.add_embeddings(f"c{c}", emb[labels == c], ["x"] * 10)
    q = centres[:20] + 0.05 * rng.standard_normal((20, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = g.top_classes(q, 3)
    g.exact_max = 100  # force the approximate index
    approx = g.top_classes(q, 3)
    assert g.index_built
    assert [e[0][0] for e in exact] == [a[0][0] for a in approx] == [f"c{c}" for c in range(20)]
