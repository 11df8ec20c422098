import numpy as np
import pytest

from soundtwin.audio import load_audio, stream_audio
from soundtwin.errors import AudioError, NoSoundError

from .conftest import tone


@pytest.mark.parametrize("fmt,subtype", [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24"), ("ogg", "VORBIS")])
def test_formats_decode_to_float_mono(wav, fmt, subtype):
    p = wav(tone(), 16000, name=f"x.{fmt}", subtype=subtype)
    y, sr = load_audio(p)
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 8000) < 700  # vorbis may pad a little
    assert 0.4 < np.max(np.abs(y)) <= 0.55


def test_int16_stereo_is_mixed_and_resampled(wav):
    left, right = tone(440, 8000), tone(440, 8000) * 0.5
    pcm = (np.stack([left, right], 1) * 32767).astype(np.int16)
    p = wav(pcm, 8000, name="st.wav")
    y, sr = load_audio(p, sr=16000)
    assert sr == 16000 and len(y) == 8000  # 0.5 s at the new rate
    assert np.max(np.abs(y)) == pytest.approx(0.375, abs=0.02)  # mean of 0.5 and 0.25


def test_missing_file_names_it(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_unreadable_file_names_it(tmp_path):
    p = tmp_path / "garbage.wav"
    p.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="garbage.wav: cannot decode audio"):
        load_audio(p)


def test_empty_audio(wav):
    p = wav(np.zeros(0, np.float32), name="empty.wav")
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        load_audio(p)


def test_non_finite_audio(wav):
    y = tone()
    y[100] = np.nan
    p = wav(y, subtype="FLOAT", name="nan.wav")
    with pytest.raises(AudioError, match="nan.wav: audio contains NaN"):
        load_audio(p)


def test_silent_audio(wav):
    p = wav(np.zeros(8000, np.float32), name="silent.wav")
    with pytest.raises(NoSoundError, match="silent.wav: audio is digitally silent"):
        load_audio(p)


def test_stream_matches_whole_file(wav):
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(8000 * 5) * 0.1).astype(np.float32)
    p = wav(y, 8000, subtype="FLOAT", name="long.wav")
    whole, _ = load_audio(p, 16000)
    blocks = list(stream_audio(p, 16000, block_seconds=0.7))
    assert len(blocks) > 5
    joined = np.concatenate(blocks)
    assert abs(len(joined) - len(whole)) <= 2
    n = min(len(joined), len(whole))
    assert np.max(np.abs(joined[1000:n - 1000] - whole[1000:n - 1000])) < 1e-3
