"""Procedural animal-like calls (scripts/synth_calls.py): a species keeps its body across calls that differ,
the synthesis does what its parameters say, and the script writes a manifest pretraining can read."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import synth_calls  # noqa: E402


def test_resonator_peaks_at_its_formant() -> None:
    impulse = np.zeros(8192)
    impulse[0] = 1
    for f in (500.0, 1800.0, 4200.0):
        h = np.abs(np.fft.rfft(synth_calls._resonate(impulse, [f], [80.0])))
        peak = np.fft.rfftfreq(8192, 1 / synth_calls.SR)[np.argmax(h)]
        assert abs(peak - f) < 0.03 * f


def test_contours_span_their_range_in_the_named_direction() -> None:
    rng = np.random.default_rng(0)
    rise = synth_calls._contour("rise", 1000, 2.0, rng)
    fall = synth_calls._contour("fall", 1000, 2.0, rng)
    arch = synth_calls._contour("arch", 1001, 2.0, rng)
    assert rise[-1] / rise[0] == pytest.approx(2.0) and np.all(np.diff(rise) > 0)
    assert fall[0] / fall[-1] == pytest.approx(2.0) and np.all(np.diff(fall) < 0)
    assert np.argmax(arch) == 500 and arch[500] / arch[0] == pytest.approx(2.0)
    assert np.all(synth_calls._contour("flat", 100, 2.0, rng) == 1)


def test_species_and_clips_are_seeded() -> None:
    a = synth_calls.clip(synth_calls.species(np.random.default_rng([0, 3])), np.random.default_rng(1))
    b = synth_calls.clip(synth_calls.species(np.random.default_rng([0, 3])), np.random.default_rng(1))
    c = synth_calls.clip(synth_calls.species(np.random.default_rng([0, 4])), np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.allclose(a, c)
    assert a.dtype == np.float32 and 0 < np.abs(a).max() <= 0.9


def _envelope(y: np.ndarray) -> np.ndarray:
    """Long-term log spectrum in 32 bands of the loudest frames: the body, whatever the call."""
    frames = np.lib.stride_tricks.sliding_window_view(y, 512)[::256]
    frames = frames[np.argsort((frames ** 2).sum(1))[-max(len(frames) // 3, 1):]]
    spec = (np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) ** 2).mean(0)[:256]
    return np.log(spec.reshape(32, 8).mean(1) + 1e-9)


def test_two_calls_of_one_species_share_a_body_more_than_two_species_do() -> None:
    env = []
    for s in range(12):
        rng = np.random.default_rng([7, s])
        sp = synth_calls.species(rng)
        env.append([_envelope(synth_calls.clip(sp, rng)) for _ in range(3)])
    same, other = [], []
    for s in range(12):
        for t in range(12):
            for i in range(3):
                for j in range(3):
                    if (s, i) < (t, j):
                        r = np.corrcoef(env[s][i], env[t][j])[0, 1]
                        (same if s == t else other).append(r)
    assert np.mean(same) > np.mean(other) + 0.1


def test_main_writes_clips_and_a_manifest_of_species_and_appends_another(tmp_path: Path) -> None:
    other = tmp_path / "recipe"
    other.mkdir()
    (other / "manifest.csv").write_text("path,label,group,kind,package,licence,seconds,sha\n"
                                        "a/x.ogg,p:a/x.ogg,p,p/a/x,p,GPL,1.0,abc\n")
    out = tmp_path / "calls"
    assert synth_calls.main(["--out", str(out), "--species", "3", "--takes", "2", "--with",
                             str(other / "manifest.csv")]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv", encoding="utf-8")))
    assert len(rows) == 7
    mine, theirs = rows[:6], rows[6]
    assert [r["kind"] for r in mine] == [f"{synth_calls.PACKAGE}/s{s:05d}" for s in range(3) for _ in range(2)]
    assert {r["group"] for r in mine} == {f"{synth_calls.PACKAGE}-{s}" for s in range(3)}
    for r in mine:
        y, sr = sf.read(out / r["path"], dtype="int16")
        assert sr == synth_calls.SR and float(r["seconds"]) == pytest.approx(len(y) / sr, abs=1e-3)
        assert r["sha"] == synth_calls.samples_hash(y[:, None], sr)
    assert len({r["sha"] for r in mine}) == 6
    assert theirs["path"] == str((other / "a/x.ogg").resolve()) and theirs["kind"] == "p/a/x"
    first = (out / "manifest.csv").read_bytes()
    assert synth_calls.main(["--out", str(tmp_path / "grouped"), "--species", "2", "--group", "p"]) == 0
    assert {r["group"] for r in csv.DictReader(open(tmp_path / "grouped" / "manifest.csv", encoding="utf-8"))} == {"p"}
    assert synth_calls.main(["--out", str(out), "--species", "3", "--takes", "2", "--with",
                             str(other / "manifest.csv")]) == 0
    assert (out / "manifest.csv").read_bytes() == first


def test_main_refuses_a_folder_it_did_not_write_and_empty_counts(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="did not write"):
        synth_calls.main(["--out", str(tmp_path), "--species", "1"])
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(SystemExit, match="1 or more"):
        synth_calls.main(["--out", str(tmp_path / "new"), "--species", "0"])
