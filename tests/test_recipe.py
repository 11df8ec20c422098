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


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def _sf2(samples: list[tuple[str, np.ndarray, int, int]], instruments: list[tuple[str, list[int]]],
         presets: list[tuple[str, int, int]]) -> bytes:
    """A SoundFont 2 file: ``samples`` (name, int16 data, rate, sample type), ``instruments`` (name, the samples
    its zones play), ``presets`` (name, bank, the instrument it plays); each list closed by its terminal record."""
    smpl, shdr = bytearray(), bytearray()
    for name, y, rate, kind in samples:
        start = len(smpl) // 2
        smpl += y.astype("<i2").tobytes() + bytes(92)  # 46 zero samples after each, as the format asks
        shdr += struct.pack("<20sIIIIIBbHH", name.encode(), start, start + len(y), start, start + len(y), rate,
                            60, 0, 0, kind)
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    inst, ibag, igen = bytearray(), bytearray(), bytearray()
    for name, zones in instruments:
        inst += struct.pack("<20sH", name.encode(), len(ibag) // 4)
        for s in zones:
            ibag += struct.pack("<HH", len(igen) // 4, 0)
            igen += struct.pack("<HH", 17, 0) + struct.pack("<HH", 53, s)  # a pan, then the sample
    inst += struct.pack("<20sH", b"EOI", len(ibag) // 4)
    ibag += struct.pack("<HH", len(igen) // 4, 0)
    igen += struct.pack("<HH", 0, 0)
    phdr, pbag, pgen = bytearray(), bytearray(), bytearray()
    for k, (name, bank, i) in enumerate(presets):
        phdr += struct.pack("<20sHHHIII", name.encode(), k, bank, len(pbag) // 4, 0, 0, 0)
        pbag += struct.pack("<HH", len(pgen) // 4, 0)
        pgen += struct.pack("<HH", 41, i)
    phdr += struct.pack("<20sHHHIII", b"EOP", 0, 0, len(pbag) // 4, 0, 0, 0)
    pbag += struct.pack("<HH", len(pgen) // 4, 0)
    pgen += struct.pack("<HH", 0, 0)
    info = b"INFO" + _chunk(b"ifil", struct.pack("<HH", 2, 1))
    sdta = b"sdta" + _chunk(b"smpl", bytes(smpl))
    pdta = b"pdta" + b"".join(_chunk(c, bytes(b)) for c, b in [
        (b"phdr", phdr), (b"pbag", pbag), (b"pmod", bytes(10)), (b"pgen", pgen), (b"inst", inst),
        (b"ibag", ibag), (b"imod", bytes(10)), (b"igen", igen), (b"shdr", shdr)])
    return _chunk(b"RIFF", b"sfbk" + _chunk(b"LIST", info) + _chunk(b"LIST", sdta) + _chunk(b"LIST", pdta))


def test_sf2_samples_are_each_recorded_sample_named_by_the_sound_it_is_a_take_of() -> None:
    rng = np.random.default_rng(0)
    y = [(rng.standard_normal(n) * 3000).astype(np.int16) for n in (11025, 8000, 8000, 4000, 4000, 9000)]
    font = _sf2([("Flute C5", y[0], 22050, 1), ("Cello A3(L)", y[1], 32000, 4), ("Cello A3(R)", y[2], 32000, 2),
                 ("Kick 1", y[3], 44100, 1), ("Unused", y[4], 44100, 1), ("Flute C5", y[5], 22050, 1)],
                [("Flute", [0, 5]), ("Cello/GS", [1, 2]), ("Std Kit", [3])],
                [("Flute", 0, 0), ("Cello", 0, 1), ("Standard", 128, 2)])
    got = dict(fetch_sounds.sf2_samples(font))
    # the right half of the stereo cello is left (its left is taken), the sample no instrument plays too; a pitched
    # instrument's notes share its folder, a drum kit's sample is a sound of its own; a repeated name gets its index
    assert list(got) == ["Flute/Flute_C5.flac", "Cello_GS/Cello_A3_L.flac", "Kick_1/Kick_1.flac",
                         "Flute/Flute_C5-5.flac"]
    for (data, rate), k in zip(got.values(), (0, 1, 3, 5)):
        assert np.array_equal(data, y[k])
    assert [rate for _, rate in got.values()] == [22050, 32000, 44100, 22050]
    assert fetch_sounds.kind("fluid/usr/x.sf2/Flute/Flute_C5-5.flac") == "fluid/usr/x.sf2/Flute"
    assert fetch_sounds.kind("fluid/usr/x.sf2/Kick_1/Kick_1.flac") == "fluid/usr/x.sf2/Kick_1"
    with pytest.raises(ValueError, match="SoundFont"):
        list(fetch_sounds.sf2_samples(_wav()))
    with pytest.raises(ValueError, match="shdr"):  # a font without its sample headers
        list(fetch_sounds.sf2_samples(font.replace(b"shdr", b"xxxx")))
    with pytest.raises(ValueError, match="runs past"):  # a font cut short
        list(fetch_sounds.sf2_samples(font[:-100]))


def test_audio_files_writes_a_soundfont_sample_as_flac_of_its_samples(tmp_path: Path) -> None:
    y = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
    (tmp_path / "usr/share/sounds/sf2").mkdir(parents=True)
    (tmp_path / "usr/share/sounds/sf2/gm.sf2").write_bytes(_sf2([("Oboe", y, 16000, 1)], [("Oboe", [0])],
                                                                 [("Oboe", 0, 0)]))
    got = dict(fetch_sounds.audio_files(tmp_path, "fluid"))
    assert list(got) == ["usr/share/sounds/sf2/gm.sf2/Oboe/Oboe.flac"]
    back, sr = sf.read(io.BytesIO(got["usr/share/sounds/sf2/gm.sf2/Oboe/Oboe.flac"]), dtype="int16")
    assert sr == 16000 and np.array_equal(back, y)
    assert fetch_sounds.licences(tmp_path, "fluid-soundfont-gm") == ["MIT"]  # its copyright file says it in prose


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
