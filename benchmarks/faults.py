"""Failure-path benchmark: upload bombs, the event loop under load, concurrent enrollments, SIGKILLs.

Loopback only (127.0.0.1), bounded in requests and time. Trains a small model on synthetic sounds
first (about 20 s), so it needs no data. Writes benchmarks/faults_results.json; ``run.py --render``
adds its table to RESULTS.md.

    python benchmarks/faults.py                 # everything (about 5 minutes on 2 cores)
    python benchmarks/faults.py --only kills    # one part: bomb, load, enroll, kills
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from soundtwin.io import atomic_write_text

HERE = Path(__file__).resolve().parent
OUT = HERE / "faults_results.json"
#: Figures measured before the fixes of issue #11 (from its text), shown beside today's.
BEFORE = {
    "bomb_peak_rss_mb": 3460, "healthz_p99_ms_during_bomb": 9200, "load_errors": 0,
    "enrollments_lost": "5 of 5", "kill_points_unopenable": "75 of 3,468 reads found no gallery",
    "long_compare_peak_mb": {"16000": 4760, "44100": 6290},
}


def save(section: str, value) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data[section] = value
    atomic_write_text(OUT, json.dumps(data, indent=1) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def tiny_model(work: Path) -> Path:
    from soundtwin.config import load_config
    from soundtwin.synth import write_synthetic_dataset
    from soundtwin.training import train

    out = work / "model"
    if (out / "meta.json").is_file():
        return out
    write_synthetic_dataset(work / "data", ["whistle", "hum", "knock", "hiss"], 16, seed=1, min_s=0.5, max_s=1.0)
    cfg = load_config("default", overrides=["train.epochs=8", "model.channels=48", "model.embedding_dim=32",
                                            "train.batch_size=32", "train.crop_min_s=0.5", "train.crop_max_s=1.0"])
    train(work / "data", out, cfg, cache_dir=False)
    return out


def flac_bomb(path: Path, seconds: float = 29.0, rate: int = 655350, channels: int = 8, clicks: bool = False) -> int:
    """A FLAC of digital silence (a few hundred KB) that decodes to ``seconds * rate * channels`` floats;
    written in blocks."""
    block = np.zeros((rate, channels), np.float32)
    if clicks:  # not silent: it is decoded and embedded in full (and compresses less)
        block[::997] = 1e-3
    with sf.SoundFile(path, "w", samplerate=rate, channels=channels, format="FLAC") as fh:
        left = int(seconds * rate)
        while left > 0:
            n = min(left, rate)
            fh.write(block[:n])
            left -= n
    return path.stat().st_size


class Server:
    def __init__(self, model: Path, gallery: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "soundtwin.cli", "serve", str(model), "--gallery",
                                      str(gallery), "--port", str(self.port), *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def bomb_bench(model: Path, work: Path) -> dict:
    """Peak RSS under one request of 30 bomb files, and /healthz latency while bombs are processed."""
    import httpx

    rows = {}
    for name, rate, extra in (("655,350 Hz x 8 ch x 29 s (refused by its rate)", 655350, ["--max-files", "30"]),
                              ("48 kHz x 8 ch x 29 s of clicks (within limits: decoded blockwise, embedded)", 48000,
                               ["--max-files", "30"])):
        f = work / f"bomb-{rate}.flac"
        size = flac_bomb(f, rate=rate, clicks=rate < 192000) if not f.is_file() else f.stat().st_size
        srv = Server(model, work / "gal-bomb", *extra)
        try:
            base = proc_kb(srv.proc.pid, "VmRSS") / 1024
            blob = f.read_bytes()
            lat: list[float] = []
            stop = threading.Event()

            def probe() -> None:
                while not stop.is_set() and len(lat) < 400:
                    t = time.perf_counter()
                    httpx.get(srv.url + "/healthz", timeout=30)
                    lat.append(time.perf_counter() - t)
                    time.sleep(0.01)

            th = threading.Thread(target=probe)
            th.start()
            t0 = time.perf_counter()
            codes = []
            for _ in range(3):
                r = httpx.post(srv.url + "/gallery/bomb", timeout=300,
                               files=[("files", (f"b{k}.flac", blob)) for k in range(30)])
                codes.append(r.status_code)
            took = time.perf_counter() - t0
            stop.set()
            th.join()
            peak = proc_kb(srv.proc.pid, "VmHWM") / 1024
            rows[name] = {"file_kb": round(size / 1024), "files_per_request": 30, "requests": 3,
                          "status": sorted(set(codes)), "seconds": round(took, 2),
                          "server_rss_before_mb": round(base), "server_peak_rss_mb": round(peak),
                          "healthz_p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1),
                          "healthz_probes": len(lat)}
            print(name, rows[name], flush=True)
        finally:
            srv.stop()
    return rows


async def _load(url: str, body: bytes, clients: int, total: int) -> dict:
    import httpx

    lat: list[float] = []
    errors = 0
    count = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors, count
        while count < total:
            count += 1
            t = time.perf_counter()
            try:
                r = await client.post(url + "/embed", files={"file": ("x.wav", body)})
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            lat.append(time.perf_counter() - t)

    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=clients)) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        took = time.perf_counter() - t0
    return {"requests": len(lat), "errors": errors, "req_per_s": round(len(lat) / took, 1),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 1)}


def load_bench(model: Path, work: Path, clients: int = 32, total: int = 2000) -> dict:
    t = np.arange(16000) / 16000
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, format="WAV")
    srv = Server(model, work / "gal-load")
    try:
        asyncio.run(_load(srv.url, buf.getvalue(), clients, 200))  # warm-up
        before = proc_kb(srv.proc.pid, "VmRSS") / 1024
        res = asyncio.run(_load(srv.url, buf.getvalue(), clients, total))
        res["rss_growth_mb"] = round(proc_kb(srv.proc.pid, "VmRSS") / 1024 - before, 1)
        res["clients"] = clients
    finally:
        srv.stop()
    print("load", res, flush=True)
    return res


def a_clip(work: Path) -> Path:
    from soundtwin.synth import SR, synth_clip

    clip = work / "enroll.wav"
    if not clip.is_file():
        sf.write(clip, synth_clip("hum", np.random.default_rng(0)), SR)
    return clip


ENROLL_CHILD = """
import sys
from soundtwin.cli import app
try:
    app(['enroll', sys.argv[1], '--label', sys.argv[2], sys.argv[3], *(['--model', sys.argv[4]] if len(sys.argv) > 4 else [])])
except SystemExit as e:
    sys.exit(e.code or 0)
"""


def enroll_bench(model: Path, work: Path, trials: int = 20) -> dict:
    """Two processes enroll one class each into the same gallery at the same moment; was one lost?"""
    from soundtwin.gallery import Gallery

    clip = a_clip(work)
    lost = failed = 0
    for k in range(trials):
        gal = work / f"gal-enroll-{k}"
        subprocess.run([sys.executable, "-c", ENROLL_CHILD, str(gal), "seed", str(clip), str(model)], check=True,
                       capture_output=True)
        procs = [subprocess.Popen([sys.executable, "-c", ENROLL_CHILD, str(gal), name, str(clip)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in ("a", "b")]
        failed += sum(p.wait(timeout=120) != 0 for p in procs)
        lost += int(set(Gallery.load(gal).classes) != {"seed", "a", "b"})
    res = {"trials": trials, "trials_with_a_lost_enrollment": lost, "processes_failed": failed}
    print("enroll", res, flush=True)
    return res


KILL_CHILD = """
import sys, json
import numpy as np
from pathlib import Path
from soundtwin.store import new_version
g = Path(sys.argv[1])
print('ready', flush=True)
k = 0
while True:
    k += 1
    with new_version(g, 'gallery', carry=True) as tmp:
        meta = json.loads((tmp / 'gallery.json').read_text())
        emb = np.load(tmp / 'embeddings.npy')
        meta['labels'].append(f'k{k}'); meta['paths'].append('x')
        np.save(tmp / 'embeddings.npy', np.concatenate([emb, emb[:1]]))
        (tmp / 'gallery.json').write_text(json.dumps(meta))
"""


def kill_bench(model: Path, work: Path, kills: int = 200, seed: int = 0) -> dict:
    """SIGKILL a process rewriting a gallery at ``kills`` random moments; does the gallery still open?"""
    from soundtwin.gallery import Gallery

    rng = random.Random(seed)
    gal = work / "gal-kill"
    if not (gal / "gallery.json").is_file():
        Gallery.create(gal, model).enroll("hum", [a_clip(work)])
    bad = 0
    versions_seen = set()
    for _ in range(kills):
        p = subprocess.Popen([sys.executable, "-c", KILL_CHILD, str(gal)], stdout=subprocess.PIPE, text=True)
        p.stdout.readline()  # type: ignore[union-attr]
        time.sleep(rng.uniform(0.0, 0.15))
        p.send_signal(signal.SIGKILL)
        p.wait()
        try:
            g = Gallery.load(gal)
            versions_seen.add(len(g.labels))
        except Exception as exc:  # noqa: BLE001
            bad += 1
            print("unopenable:", exc, flush=True)
    leftovers = [e.name for e in gal.iterdir() if e.name.startswith(".build-")]
    res = {"kills": kills, "unopenable_after_kill": bad, "distinct_sizes_seen": len(versions_seen),
           "build_leftovers_before_next_write": len(leftovers)}
    print("kills", res, flush=True)
    return res


def long_bench(model: Path, work: Path) -> list[dict]:
    """Peak memory of ``soundtwin compare`` on an hour-long WAV (empty feature cache each time)."""
    rows = []
    for sr, ch in ((16000, 1), (44100, 2)):
        f = work / f"hour-{sr}-{ch}.wav"
        if not f.is_file():
            rng = np.random.default_rng(0)
            with sf.SoundFile(f, "w", samplerate=sr, channels=ch, subtype="PCM_16") as fh:
                for k in range(360):
                    t = np.arange(10 * sr) / sr
                    y = 0.2 * np.sin(2 * np.pi * (200 + k) * t) + 0.02 * rng.standard_normal(len(t))
                    fh.write(np.repeat(y[:, None], ch, 1).astype(np.float32))
        cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
        t0 = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", sys.executable, "-m", "soundtwin.cli", "compare",
                            str(model), str(f), str(a_clip(work)), "--json"],
                           env={**os.environ, "SOUNDTWIN_CACHE": str(cache)}, capture_output=True, text=True, check=True)
        peak = int(r.stderr.strip().splitlines()[-1].split("=")[1]) / 1024  # this process alone (GNU time)
        rows.append({"file": f"1 h, {sr} Hz, {ch} ch, {f.stat().st_size >> 20} MB", "peak_rss_mb": round(peak),
                     "seconds": round(time.perf_counter() - t0, 1), "score": json.loads(r.stdout)["score"]})
        print("long", rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["bomb", "load", "enroll", "kills", "long"], action="append")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="soundtwin-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SOUNDTWIN_CACHE", str(work / "cache"))
    model = tiny_model(work)
    parts = args.only or ["bomb", "load", "enroll", "kills", "long"]
    if "bomb" in parts:
        save("bomb", bomb_bench(model, work))
    if "load" in parts:
        save("load", load_bench(model, work))
    if "enroll" in parts:
        save("enroll", enroll_bench(model, work))
    if "kills" in parts:
        save("kills", kill_bench(model, work))
    if "long" in parts:
        save("long", long_bench(model, work))
    save("before", BEFORE)
    save("command", "python benchmarks/faults.py")


if __name__ == "__main__":
    main()
