"""What every runtime shares: batching by length, long clips in windows."""

import numpy as np

import soundtwin.runtime.base as base
from soundtwin.runtime.base import embed_in_batches, length_batches


def test_batches_group_similar_lengths_within_the_frame_budget():
    lengths = [50, 400, 60, 390, 55, 1000]
    batches = length_batches(lengths, max_batch=3, max_frames=1200)
    assert sorted(int(i) for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 1200 or len(b) == 1
    assert [list(b) for b in batches][0] == [0, 4, 2]  # the shortest together


def test_several_long_clips_in_one_call_are_each_embedded_in_windows(monkeypatch):
    monkeypatch.setattr(base, "MAX_EMBED_FRAMES", 100)
    calls = []

    def run(x, lengths):  # a fake encoder: the mean feature vector, and which widths it was given
        calls.append(x.shape[-1])
        return np.stack([x[k, :, : lengths[k]].mean(-1) for k in range(len(x))]).astype(np.float32)

    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((4, n)).astype(np.float32) for n in (30, 250, 260, 40)]
    out = embed_in_batches(feats, run, normalize=False)
    assert out.shape == (4, 4) and np.all(np.isfinite(out))
    assert max(calls) == 100  # no batch wider than a window
    np.testing.assert_allclose(out[0], feats[0].mean(-1), rtol=1e-5)
    starts = base.window_starts(250, 100)
    np.testing.assert_allclose(out[1], np.mean([feats[1][:, s:s + 100].mean(-1) for s in starts], 0), rtol=1e-5)
