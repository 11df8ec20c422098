import numpy as np
import pytest

from soundtwin.fewshot import fewshot, fewshot_embeddings


def test_fewshot_perfect_on_separable_embeddings():
    rng = np.random.default_rng(0)
    centres = np.eye(8)
    labels = np.repeat(np.arange(8), 10)
    emb = centres[labels] + 0.05 * rng.standard_normal((80, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    r = fewshot_embeddings(emb, labels, ways=5, shots=1, episodes=50)
    assert r.accuracy == 1.0 and r.queries_per_class == 5
    noise = rng.standard_normal((80, 8))
    r2 = fewshot_embeddings(noise, labels, ways=5, shots=1, episodes=200)
    assert 0.1 < r2.accuracy < 0.35 and r2.ci95 > 0  # chance is 0.2
    with pytest.raises(Exception, match="needs 9 classes"):
        fewshot_embeddings(emb, labels, ways=9, shots=1, episodes=5)


def test_fewshot_on_clips(trained, synth_data):
    from soundtwin.runtime.torch_runtime import Verifier

    r = fewshot(Verifier.load(trained[0]), synth_data / "test", ways=4, shots=1, episodes=30)
    assert r.accuracy >= 0.8
