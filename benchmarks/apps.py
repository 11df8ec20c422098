"""Benchmarks of the applications built on a trained model: few-shot accuracy, scanning long
recordings, and the HTTP service under load. Writes benchmarks/apps_results.json.

Models come from ``python benchmarks/run.py --keep benchmarks/work/models`` (one per protocol).

    python benchmarks/apps.py fewshot
    python benchmarks/apps.py scan
    python benchmarks/apps.py load
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from soundtwin.io import atomic_write_text

HERE = Path(__file__).resolve().parent
MODELS = HERE / "work" / "models"
OUT = HERE / "apps_results.json"
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))


def save(section: str, rows) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[section] = rows
    atomic_write_text(OUT, json.dumps(data, indent=1) + "\n")


def fewshot_bench(episodes: int) -> None:
    from soundtwin.data import discover, encode_labels
    from soundtwin.fewshot import fewshot_embeddings
    from soundtwin.runtime.torch_runtime import Verifier

    rows = []
    for proto, ways in (("catsdogs", 2), ("fsdd-digits", 10), ("fsdd-speakers", 6)):
        mdir = MODELS / f"{proto}-default"
        if not mdir.is_dir():
            print(f"skip {proto}: no model in {mdir}")
            continue
        v = Verifier.load(mdir)
        clips = discover(SHARED / "benchmarks" / proto / "test.csv")
        labels, _ = encode_labels([c.label for c in clips])
        emb = v.embed([c.path for c in clips])
        for shots in (1, 5):
            for scoring in ("mean", "max", "topk"):
                if shots == 1 and scoring != "mean":
                    continue  # identical with one exemplar
                r = fewshot_embeddings(emb, labels, ways=ways, shots=shots, episodes=episodes, scoring=scoring)
                rows.append({"protocol": proto, **r.as_dict()})
                print(f"{proto:14s} {ways}-way {shots}-shot {scoring:5s} accuracy {r.accuracy:.4f} +/- {r.ci95:.4f}", flush=True)
    save("fewshot", rows)


def build_recording(path: Path, planted: list[tuple[Path, str]], distractors: list[Path], sr: int, seed: int = 0
                    ) -> tuple[list[tuple[float, float, str]], float]:
    """Write planted clips separated by 1-3 s of low noise (and some distractor sounds) to ``path``,
    streaming, and return the planted intervals and the total duration."""
    from soundtwin.audio import load_audio

    rng = np.random.default_rng(seed)
    truth = []
    t = 0
    items = [(p, lab) for p, lab in planted] + [(p, None) for p in distractors]
    order = rng.permutation(len(items))
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16") as fh:
        for k in order:
            gap = (rng.standard_normal(int(rng.uniform(1.0, 3.0) * sr)) * 10 ** (-55 / 20)).astype(np.float32)
            fh.write(gap)
            t += len(gap)
            p, lab = items[k]
            y, _ = load_audio(p, sr)
            if lab is None:
                y = y[: int(2.0 * sr)] * 0.5
            fh.write(y + (rng.standard_normal(len(y)) * 10 ** (-55 / 20)).astype(np.float32))
            if lab is not None:
                truth.append((t / sr, (t + len(y)) / sr, lab))
            t += len(y)
    return truth, t / sr


def scan_bench(window: float, hop: float, n_planted: int) -> None:
    from soundtwin.data import discover
    from soundtwin.gallery import Gallery
    from soundtwin.scan import scan
    from soundtwin.runtime.torch_runtime import Verifier

    mdir = MODELS / "fsdd-digits-default"
    clips = discover(SHARED / "benchmarks" / "fsdd-digits" / "test.csv")
    rng = np.random.default_rng(0)
    by_digit: dict[str, list[Path]] = {}
    for c in clips:
        by_digit.setdefault(c.label, []).append(c.path)
    with tempfile.TemporaryDirectory() as tmp:
        g = Gallery(Path(tmp) / "gal", Verifier.load(mdir))
        enrolled, rest = {}, []
        for d, ps in sorted(by_digit.items()):
            ps = [ps[i] for i in rng.permutation(len(ps))]
            enrolled[d] = ps[:5]
            rest += [(p, d) for p in ps[5:]]
            g.enroll(d, ps[:5], save=False)
        planted = [rest[i] for i in rng.choice(len(rest), n_planted, replace=False)]
        cd = sorted((SHARED / "data" / "audio-cats-and-dogs" / "cats_dogs").glob("*.wav"))
        distractors = [cd[i] for i in rng.choice(len(cd), n_planted // 10, replace=False)]
        rec = Path(tmp) / "recording.wav"
        truth, duration = build_recording(rec, planted, distractors, 8000)
        t0 = time.perf_counter()
        segs = scan(g, rec, window=window, hop=hop)
        wall = time.perf_counter() - t0
    found = 0
    for s0, e0, lab in truth:
        if any(s.label == lab and s.start < e0 and s.end > s0 for s in segs):
            found += 1
    false_alarms = sum(1 for s in segs if not any(s.start < e0 and s.end > s0 for s0, e0, _ in truth))
    wrong = sum(1 for s in segs if any(s.start < e0 and s.end > s0 and s.label != lab for s0, e0, lab in truth)
                and not any(s.start < e0 and s.end > s0 and s.label == lab for s0, e0, lab in truth))
    row = {"recording_s": round(duration, 1), "planted": len(truth), "distractors": len(distractors),
           "window_s": window, "hop_s": hop, "scan_wall_s": round(wall, 2), "x_realtime": round(duration / wall, 1),
           "recall": round(found / len(truth), 4), "segments": len(segs), "false_alarms_in_gaps_or_distractors": false_alarms,
           "wrong_label_segments": wrong, "gallery": "fsdd-digits test speakers, 5 clips per digit",
           "model": "fsdd-digits-default"}
    print(row, flush=True)
    save("scan", [row])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _load(url: str, files: list[bytes], clients: int, total: int, limit_s: float) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    sent = 0
    t_end = time.perf_counter() + limit_s

    async def worker(k: int, client: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < total and time.perf_counter() < t_end:
            i = sent
            sent += 1
            a, b = files[i % len(files)], files[(i * 7 + 3) % len(files)]
            t = time.perf_counter()
            try:
                r = await client.post(url + "/compare", files={"a": ("a.wav", a), "b": ("b.wav", b)})
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append(time.perf_counter() - t)
            errors += 0 if ok else 1

    async with httpx.AsyncClient(timeout=60) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, client) for k in range(clients)))
        wall = time.perf_counter() - t0
    lat_ms = np.array(lat) * 1000
    return {"requests": len(lat), "errors": errors, "wall_s": round(wall, 2), "throughput_rps": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 1), "p99_ms": round(float(np.percentile(lat_ms, 99)), 1)}


def load_bench(clients: int, total: int, limit_s: float) -> None:
    from soundtwin.audio import load_audio

    mdir = MODELS / "fsdd-digits-default"
    if not (mdir / "model.onnx").is_file():
        subprocess.run([sys.executable, "-m", "soundtwin.cli", "export", str(mdir)], check=True)
    cd = sorted((SHARED / "data" / "audio-cats-and-dogs" / "cats_dogs").glob("*.wav"))[:40]
    rng = np.random.default_rng(0)
    files = []
    for p in cd:  # 1-2 s excerpts of real recordings
        y, sr = load_audio(p)
        n = int(rng.uniform(1.0, 2.0) * sr)
        buf = io.BytesIO()
        sf.write(buf, y[:n], sr, format="WAV", subtype="PCM_16")
        files.append(buf.getvalue())
    rows = []
    for runtime in ("torch", "onnx"):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "soundtwin.cli", "serve", str(mdir), "--port", str(port),
                                 "--runtime", runtime], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            import httpx

            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            asyncio.run(_load(f"http://127.0.0.1:{port}", files, 4, 20, 30))  # warm-up
            r = {"runtime": runtime, "clients": clients, **asyncio.run(_load(f"http://127.0.0.1:{port}", files, clients, total, limit_s))}
        finally:
            proc.terminate()
            proc.wait(10)
        rows.append(r)
        print(r, flush=True)
    save("load", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["fewshot", "scan", "load"])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--window", type=float, default=0.6)
    ap.add_argument("--hop", type=float, default=0.3)
    ap.add_argument("--planted", type=int, default=300)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--seconds", type=float, default=90)
    a = ap.parse_args()
    if a.what == "fewshot":
        fewshot_bench(a.episodes)
    elif a.what == "scan":
        scan_bench(a.window, a.hop, a.planted)
    else:
        load_bench(a.clients, a.requests, a.seconds)


if __name__ == "__main__":
    main()
