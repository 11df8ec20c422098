"""Gallery search at scale, on synthetic clustered unit-norm embeddings (128-d).

Reports build time, memory, top-5 query latency and recall@5 against exact search, for exact
(numpy) and IVF (faiss) indexes, and writes benchmarks/index_results.json.

    python benchmarks/index_bench.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from soundtwin.index import ExactIndex, HNSWIndex, IVFIndex
from soundtwin.io import atomic_write_text


def synthetic(n: int, d: int = 128, classes: int = 20000, spread: float = 0.25, seed: int = 0,
              centres_only_seed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unit embeddings around ``classes`` random centres (like enrolled clips of many classes); the
    within-class noise has norm about ``3 * spread`` (0.25: same-class cosine about 0.64).
    ``centres_only_seed``: same centres as ``seed``, fresh noise (queries of enrolled classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if centres_only_seed:
        rng = np.random.default_rng(seed + 12345)
    x = centres[rng.integers(classes, size=n)] + spread * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d) * 3
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), centres


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--spread", type=float, default=0.25)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("index_results.json"))
    args = ap.parse_args()
    x, _ = synthetic(args.n, spread=args.spread)
    # queries: new clips of enrolled classes (a class centre plus fresh within-class spread)
    q, _ = synthetic(args.queries, classes=20000, spread=args.spread, seed=0, centres_only_seed=True)
    import faiss

    rows: list[dict] = []
    truth = None

    def measure(index, label: str, build: float, n: int = args.n) -> None:  # type: ignore[no-untyped-def]
        nonlocal truth
        t = time.perf_counter()
        _, got = index.search(q, 5)
        batched = (time.perf_counter() - t) / len(q) * 1000
        if truth is None:
            truth = got  # the first index measured is the exact one
        singles = min(200, len(q))
        t = time.perf_counter()
        for i in range(singles):  # one query at a time, as a service answers
            index.search(q[i], 5)
        single = (time.perf_counter() - t) / singles * 1000
        exact = isinstance(index, ExactIndex)  # exact by construction (subsets have their own truth)
        recall = 1.0 if exact else float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got, truth)]))
        size = faiss.serialize_index(index.index).nbytes if hasattr(index, "index") else index.vectors.nbytes
        rows.append({"index": label, "n": n, "build_s": round(build, 1), "index_mb": round(size / 2**20),
                     "query_ms_batched": round(batched, 3), "query_ms_single": round(single, 3),
                     "recall_at_5": round(recall, 4)})
        print(rows[-1], flush=True)

    measure(ExactIndex(x), "exact (numpy)", 0.0)
    t = time.perf_counter()
    ivf = IVFIndex(x)
    build = time.perf_counter() - t
    for nprobe in (64, 256, 512, 1024):
        ivf.index.nprobe = nprobe
        measure(ivf, f"IVF-Flat nlist={ivf.nlist} nprobe={nprobe} (faiss)", build)
    del ivf
    t = time.perf_counter()
    hnsw = HNSWIndex(x)
    build = time.perf_counter() - t
    for ef in (32, 64, 96, 128, 256):
        hnsw.index.hnsw.efSearch = ef
        measure(hnsw, f"HNSW-Flat M=32 efConstruction=80 efSearch={ef} (faiss)", build)
    for n_small in (10_000, 50_000, 200_000):
        if n_small < args.n:
            measure(ExactIndex(x[:n_small]), "exact (numpy)", 0.0, n=n_small)
    atomic_write_text(args.out, json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
