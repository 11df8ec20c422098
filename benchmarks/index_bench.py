"""Gallery search at scale, on synthetic clustered unit-norm embeddings (128-d).

Reports build time, memory, top-5 query latency and recall@5 against exact search, for exact
(numpy) and IVF (faiss) indexes, and writes benchmarks/index_results.json.

    python benchmarks/index_bench.py [--n 1000000]
    python benchmarks/index_bench.py --pq --n 10000000     # IVF-PQ, built chunk by chunk (index_pq_results.json)

``--pq`` never holds the vectors: chunks of 500,000 are generated, added and dropped; exact top-5 for recall is
found by streaming the same chunks again; peak RSS is the process's, from ``resource``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from collections.abc import Iterator

import numpy as np

from soundtwin.index import ExactIndex, HNSWIndex, IVFIndex, IVFPQIndex
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


def chunks(n: int, size: int, spread: float, labels: list | None = None) -> Iterator[np.ndarray]:
    """The same ``n`` vectors as one stream, ``size`` at a time (each chunk its own seed; the class centres are
    shared: those of ``synthetic``); each chunk's classes are appended to ``labels`` if given."""
    _, centres = synthetic(1, spread=spread)
    for k, start in enumerate(range(0, n, size)):
        rng = np.random.default_rng([1, k])
        m = min(size, n - start)
        lab = rng.integers(len(centres), size=m)
        if labels is not None:
            labels.append(lab)
        x = centres[lab] + \
            spread * rng.standard_normal((m, centres.shape[1])).astype(np.float32) / np.sqrt(centres.shape[1]) * 3
        yield (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def pq_bench(n: int, n_queries: int, spread: float, out: Path, chunk: int = 500_000) -> None:
    import resource

    _, centres = synthetic(1, spread=spread)
    rq = np.random.default_rng(99)
    q_lab = rq.integers(len(centres), size=n_queries)  # new clips of enrolled classes
    q = centres[q_lab] + spread * rq.standard_normal((n_queries, centres.shape[1])).astype(np.float32) / \
        np.sqrt(centres.shape[1]) * 3
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    db_lab: list = []
    t = time.perf_counter()
    best_s = np.full((len(q), 5), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), 5), dtype=np.int64)
    for k, c in enumerate(chunks(n, chunk, spread, db_lab)):  # exact top-5, streamed
        s_ = q @ c.T
        top = np.argpartition(-s_, 5, axis=1)[:, :5]
        cand_s = np.concatenate([best_s, np.take_along_axis(s_, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + k * chunk], 1)
        o = np.argsort(-cand_s, 1)[:, :5]
        best_s, best_i = np.take_along_axis(cand_s, o, 1), np.take_along_axis(cand_i, o, 1)
    exact_s = time.perf_counter() - t
    db_lab = np.concatenate(db_lab)
    exact_class = float(np.mean(db_lab[best_i[:, 0]] == q_lab))
    rows = []
    for m, nlist in ((32, 4096), (64, 4096)):
        sample = np.concatenate([c for c, _ in zip(chunks(n, 100_000, spread), range(2))])[:200_000]
        t = time.perf_counter()
        ix = IVFPQIndex.build(chunks(n, chunk, spread), sample=sample, nlist=nlist, m=m)
        build = time.perf_counter() - t
        for nprobe in (16, 64, 256):
            ix.index.nprobe = nprobe
            ix.search(q[:10], 5)
            t = time.perf_counter()
            res = [ix.search(q[i], 5)[1][0] for i in range(len(q))]  # one query at a time, as a service answers
            single = (time.perf_counter() - t) / len(q) * 1000
            recall = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(res, best_i, strict=True)]))
            top1_class = float(np.mean([db_lab[r[0]] == c for r, c in zip(res, q_lab, strict=True)]))
            rows.append({"index": f"IVF-PQ m={m} (x8 bits) nlist={nlist} nprobe={nprobe} (faiss)", "n": n,
                         "build_s": round(build, 1), "index_mb": round(ix.memory_bytes() / 2**20),
                         "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                         "query_ms_single": round(single, 3), "recall_at_5": round(recall, 4),
                         "top1_class": round(top1_class, 4), "exact_top1_class": round(exact_class, 4),
                         "exact_streamed_s": round(exact_s, 1), "queries": len(q)})
            print(rows[-1], flush=True)
        del ix
    atomic_write_text(out, json.dumps(rows, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--spread", type=float, default=0.25)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--pq", action="store_true", help="IVF-PQ built chunk by chunk (10 million vectors and more)")
    args = ap.parse_args()
    if args.pq:
        return pq_bench(args.n, min(args.queries, 200), args.spread,
                        args.out or Path(__file__).with_name("index_pq_results.json"))
    args.out = args.out or Path(__file__).with_name("index_results.json")
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
