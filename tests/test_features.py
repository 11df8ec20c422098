import librosa
import numpy as np
import pytest
import soundfile as sf

from soundtwin.config import PRESETS, FeatureConfig
from soundtwin.extract import FeatureExtractor
from soundtwin.features import compute_features, fix_frames, frames_for, log_mel, tutorial_mfcc

from .conftest import tone


@pytest.mark.parametrize("n", [100, 1600, 16000, 33333])
def test_log_mel_shape_and_frames(n):
    cfg = FeatureConfig()
    y = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    f = compute_features(y, cfg)
    assert f.shape == (64, frames_for(n, cfg)) and f.dtype == np.float32


def test_log_mel_batch_equals_single():
    rng = np.random.default_rng(0)
    ys = rng.standard_normal((3, 4000)).astype(np.float32)
    batch = log_mel(ys)
    for k in range(3):
        np.testing.assert_allclose(batch[k], log_mel(ys[k]), rtol=1e-4, atol=1e-4)


def test_log_mel_peak_follows_tone_frequency():
    lo, hi = log_mel(tone(300)), log_mel(tone(3000))
    assert np.argmax(lo.mean(1)) < np.argmax(hi.mean(1))


def test_tutorial_front_end_is_the_tutorials_audio2vector():
    y = np.random.default_rng(1).standard_normal(22050).astype(np.float32) * 0.1
    expect = librosa.feature.mfcc(y=y[::3], sr=22050)
    expect = np.pad(expect, ((0, 0), (0, 400 - expect.shape[1])))
    got = compute_features(y, PRESETS["tutorial"].features)
    assert got.shape == (20, 400)
    np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-3)


def test_tutorial_front_end_cuts_long_clips():
    y = np.random.default_rng(2).standard_normal(22050 * 40).astype(np.float32) * 0.1
    assert tutorial_mfcc(y).shape == (20, 400)
    assert fix_frames(np.ones((2, 5)), 3).shape == (2, 3)


def test_cache_serves_second_run_without_decoding(tmp_path, wav, monkeypatch):
    p = wav(tone(), name="a.wav")
    ex = FeatureExtractor(FeatureConfig(), cache_dir=tmp_path / "cache")
    first = ex.from_file(p)

    def boom(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(sf, "read", boom)
    np.testing.assert_array_equal(ex.from_file(p), first)


def test_cache_is_never_stale(tmp_path, wav):
    p = wav(tone(300), name="a.wav")
    ex = FeatureExtractor(FeatureConfig(), cache_dir=tmp_path / "cache")
    first = ex.from_file(p)
    sf.write(p, tone(3000), 16000)  # same path, new content
    second = ex.from_file(p)
    assert not np.allclose(first, second)
    other = FeatureExtractor(FeatureConfig(n_mels=40), cache_dir=tmp_path / "cache").from_file(p)
    assert other.shape[0] == 40  # new settings, new key


def test_from_files_skips_bad_clips_and_reports(tmp_path, wav):
    good = wav(tone(), name="good.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nope")
    feats, errors = FeatureExtractor(FeatureConfig(), cache_dir=False).from_files([good, bad], skip_errors=True)
    assert feats[0] is not None and feats[1] is None
    assert len(errors) == 1 and "bad.wav" in errors[0][1]
