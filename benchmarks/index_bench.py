"""Gallery search at scale, on synthetic clustered unit-norm embeddings (128-d).

Reports build time, memory, top-5 query latency and recall@5 against exact search, for exact
(numpy) and IVF (faiss) indexes, and writes benchmarks/index_results.json.

    python benchmarks/index_bench.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from soundtwin.index import ExactIndex, IVFIndex


def synthetic(n: int, d: int = 128, classes: int = 20000, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    """Embeddings around ``classes`` random centres (like enrolled clips of many classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(classes, size=n)] + spread * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), centres


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("index_results.json"))
    args = ap.parse_args()
    x, _ = synthetic(args.n)
    rng = np.random.default_rng(1)
    q = x[rng.choice(len(x), args.queries, replace=False)] + 0.02 * rng.standard_normal((args.queries, x.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base = rss_mb()
    exact = ExactIndex(x)
    t = time.perf_counter()
    _, truth = exact.search(q, 5)
    exact_ms = (time.perf_counter() - t) / len(q) * 1000
    t = time.perf_counter()
    for i in range(50):  # one query at a time, as a service answers
        exact.search(q[i], 5)
    exact_single_ms = (time.perf_counter() - t) / 50 * 1000
    rows = [{"index": "exact (numpy)", "n": args.n, "build_s": 0.0, "query_ms_batched": round(exact_ms, 3),
             "query_ms_single": round(exact_single_ms, 3), "recall_at_5": 1.0}]
    print(rows[-1], flush=True)
    for nprobe in (16, 64, 128, 256, 512):
        t = time.perf_counter()
        if nprobe == 16:
            import faiss

            ivf = IVFIndex(x, nprobe=nprobe)
            build = time.perf_counter() - t
            mem = faiss.serialize_index(ivf.index).nbytes / 2**20
        ivf.index.nprobe = nprobe
        t = time.perf_counter()
        _, got = ivf.search(q, 5)
        batched = (time.perf_counter() - t) / len(q) * 1000
        t = time.perf_counter()
        for i in range(200):
            ivf.search(q[i], 5)
        single = (time.perf_counter() - t) / 200 * 1000
        recall = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, truth)]))
        rows.append({"index": f"IVF-Flat nlist={ivf.nlist} nprobe={nprobe} (faiss)", "n": args.n, "build_s": round(build, 1),
                     "index_mb": round(mem), "query_ms_batched": round(batched, 3), "query_ms_single": round(single, 3),
                     "recall_at_5": round(recall, 4)})
        print(rows[-1], flush=True)
    for n_small in (10_000, 50_000, 200_000):
        e = ExactIndex(x[:n_small])
        t = time.perf_counter()
        for i in range(200):
            e.search(q[i], 5)
        rows.append({"index": "exact (numpy)", "n": n_small, "build_s": 0.0,
                     "query_ms_single": round((time.perf_counter() - t) / 200 * 1000, 3), "recall_at_5": 1.0})
        print(rows[-1], flush=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
