import librosa
import numpy as np
import pytest
import soundfile as sf

from soundtwin.config import PRESETS, FeatureConfig
from soundtwin.extractor import FeatureExtractor
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


@pytest.fixture
def batch_files(tmp_path):
    """More files than PACK_MIN, each a tone of its own pitch."""
    from soundtwin.extractor import PACK_MIN

    d = tmp_path / "clips"
    d.mkdir()
    paths = []
    for k in range(PACK_MIN + 3):
        p = d / f"{k:03d}.wav"
        sf.write(p, tone(200 + 40 * k, seconds=0.3), 16000)
        paths.append(p)
    return paths


def test_batches_are_packed_and_served_by_stat_without_reading(tmp_path, batch_files, monkeypatch):
    import soundtwin.extractor as ex_mod

    monkeypatch.setattr(ex_mod, "RACY_NS", 0)  # the files were just written: trust their stat at once
    cfg = FeatureConfig()
    cold, errors = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)
    assert not errors and len(list((tmp_path / "c").rglob("packs/*.json"))) == 1
    assert not [p for p in (tmp_path / "c").rglob("*.npy") if p.parent.name != "packs"]  # no per-clip files

    def no_read(self, *a, **k):
        raise AssertionError(f"read {self} again")

    monkeypatch.setattr(ex_mod.Path, "read_bytes", no_read)
    warm, _ = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)  # a new process, as it were
    for a, b in zip(cold, warm, strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(list((tmp_path / "c").rglob("packs/*.json"))) == 1  # nothing new to write


def test_served_features_are_read_only_so_a_caller_cannot_corrupt_the_cache(tmp_path, batch_files, monkeypatch):
    import soundtwin.extractor as ex_mod

    monkeypatch.setattr(ex_mod, "RACY_NS", 0)
    cfg = FeatureConfig()
    cold, _ = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)
    ex = FeatureExtractor(cfg, cache_dir=tmp_path / "c")
    warm, _ = ex.from_files(batch_files)  # served from the pack, read whole
    single = ex.from_file(batch_files[0])  # served from the same pack
    for f in (warm[0], single):
        with pytest.raises(ValueError, match="read-only"):
            f += 1.0
    np.testing.assert_array_equal(ex.from_files(batch_files)[0][0], cold[0])
    # and a model embeds them as it embeds fresh ones
    from soundtwin.runtime.base import pad_batch

    x, lengths = pad_batch(warm[:3])
    np.testing.assert_array_equal(x[0, :, : lengths[0]], cold[0])


def test_packed_cache_is_never_stale(tmp_path, batch_files):
    cfg = FeatureConfig()
    ex = FeatureExtractor(cfg, cache_dir=tmp_path / "c")
    cold, _ = ex.from_files(batch_files)
    # Same path, same size, new content, within the same second: the stat memo must not serve it
    # (files changed this recently are hashed again, as git does with racily clean entries).
    sf.write(batch_files[0], tone(3000, seconds=0.3), 16000)
    warm, _ = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)
    assert not np.allclose(cold[0], warm[0])
    np.testing.assert_array_equal(cold[1], warm[1])
    np.testing.assert_array_equal(warm[0], FeatureExtractor(cfg, cache_dir=False).from_file(batch_files[0]))


def test_unreadable_pack_is_ignored(tmp_path, batch_files, caplog):
    cfg = FeatureConfig()
    cold, _ = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)
    index = next((tmp_path / "c").rglob("packs/*.json"))
    index.write_text('{"entries": [["x", 0, 64, 999999]], "stats": []}')
    again, errors = FeatureExtractor(cfg, cache_dir=tmp_path / "c").from_files(batch_files)
    assert not errors and "ignoring unreadable feature pack" in caplog.text
    for a, b in zip(cold, again, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [(16000, 512, 64, 20.0, 0.0), (22050, 2048, 128, 0.0, 0.0),
                                                       (8000, 256, 40, 50.0, 3800.0)])
def test_our_mel_filterbank_is_librosas(sr, n_fft, n_mels, fmin, fmax):
    """Ours avoids importing librosa (2.5 s) when a clip is featurised; it must be the same filterbank."""
    import librosa

    from soundtwin.features import mel_basis

    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax or sr / 2)
    np.testing.assert_array_equal(mel_basis(sr, n_fft, n_mels, fmin, fmax), ref)  # to the bit


def test_long_signals_get_the_same_log_mel_in_chunks(monkeypatch):
    import soundtwin.features as F

    y = np.random.default_rng(0).standard_normal(16000 * 7).astype(np.float32)
    whole = F.log_mel(y)
    monkeypatch.setattr(F, "FRAME_CHUNK", 97)  # many chunks, edges included
    np.testing.assert_allclose(F.log_mel(y), whole, atol=1e-5)


def test_cached_features_are_read_by_one_thread_at_a_time(tmp_path, wav, monkeypatch):
    """``np.load`` parses each entry's header with ``ast.literal_eval``, which CPython 3.11 can fail when two
    threads build an AST at once (python/cpython#106905: three runs of tests/test_gallery.py in four failed so
    here); the workers of
    ``from_files`` must take turns on it."""
    import threading
    import time

    paths = [wav(tone(200 + 50 * k), name=f"{k}.wav") for k in range(8)]
    ex = FeatureExtractor(FeatureConfig(), cache_dir=tmp_path / "cache", workers=4)
    cold, _ = ex.from_files(paths)  # fills the cache (8 files: under the pack size, so one entry a clip)
    inside, most, lock = [0], [0], threading.Lock()
    real = np.load

    def watched(*a, **k):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.02)  # long enough for another worker to arrive
        try:
            return real(*a, **k)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(np, "load", watched)
    warm, errors = ex.from_files(paths)
    assert not errors and all(np.array_equal(a, b) for a, b in zip(cold, warm))
    assert most[0] == 1
