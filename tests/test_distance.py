import numpy as np
import pytest

from soundtwin.distance import Cosine, Euclidean, get_distance
from soundtwin.errors import ConfigError


def test_class_scores_modes():
    emb = np.array([[1, 0], [0.8, 0.6], [0, 1]], dtype=np.float32)
    labels = np.array(["a", "a", "b"])
    q = np.array([[0.6, 0.8]], dtype=np.float32)
    mean = get_distance("cosine").class_scores(q, emb, labels, ["a", "b"], "mean")
    best = get_distance("cosine").class_scores(q, emb, labels, ["a", "b"], "max")
    assert best[0, 0] == pytest.approx(0.96) and best[0, 1] == pytest.approx(0.8)
    c = np.array([1.8, 0.6]) / np.linalg.norm([1.8, 0.6])
    assert mean[0, 0] == pytest.approx(float(q[0] @ c))


def test_scores_are_higher_for_closer_embeddings_in_both_distances():
    a = np.array([[1.0, 0.0]])
    near, far = np.array([[0.8, 0.6]]), np.array([[-1.0, 0.0]])
    for d in (Cosine(), Euclidean()):
        assert d.score(a, near)[0] > d.score(a, far)[0]
        assert d.pairwise(a, np.concatenate([near, far])).argmax() == 0
    assert Cosine().score(a, far)[0] == pytest.approx(-1.0)
    assert Euclidean().score(a, far)[0] == pytest.approx(-2.0)
    assert Euclidean().score(a, a)[0] == pytest.approx(-np.sqrt(1e-7))  # floored: finite where a == b


def test_pairwise_agrees_with_rowwise_score():
    rng = np.random.default_rng(1)
    q, x = rng.standard_normal((3, 4)), rng.standard_normal((5, 4))
    for d in (Cosine(), Euclidean()):
        p = d.pairwise(q, x)
        for i in range(3):
            np.testing.assert_allclose(p[i], d.score(np.repeat(q[i:i + 1], 5, 0), x), rtol=1e-12)


def test_centroids_and_topk_scoring():
    emb = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float64)
    labels = ["a", "a", "a", "b"]
    c = Cosine().centroid(emb[:3])
    m = emb[:3].mean(0)
    np.testing.assert_allclose(c, m / np.linalg.norm(m))  # the mean direction, unit length
    np.testing.assert_allclose(Euclidean().centroid(emb[:3]), emb[:3].mean(0))
    q = np.array([[0.0, 1.0]])
    top = Cosine().class_scores(q, emb, labels, ["a", "b"], "topk")  # the mean of the 3 best of a
    assert top[0, 0] == pytest.approx((1.0 + 0.8 + 0.0) / 3) and top[0, 1] == pytest.approx(0.0)
    eu = Euclidean().class_scores(q, emb, labels, ["a", "b"], "mean")
    assert eu[0, 0] == pytest.approx(-np.linalg.norm(q[0] - emb[:3].mean(0)))


def test_unknown_names_are_refused():
    with pytest.raises(ConfigError, match="distance 'manhattan' is not one of cosine, euclidean"):
        get_distance("manhattan")
    with pytest.raises(ConfigError, match="scoring 'median'"):
        Cosine().class_scores(np.ones((1, 2)), np.ones((2, 2)), ["a", "b"], ["a", "b"], "median")
    assert get_distance("cosine").normalizes and not get_distance("euclidean").normalizes
