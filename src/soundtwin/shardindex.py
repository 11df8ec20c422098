"""Search indexes built from embedding shards (:mod:`soundtwin.bulk`), for galleries larger than memory: faiss
IVF-Flat (exact vectors, about 512 bytes each at 128-d) or IVF-PQ (``m`` bytes each), trained on a sample and
filled a shard at a time. An index folder holds ``index.faiss``, ``rows.parquet`` (the path and label of each
id) and ``index.json`` (kind, size, settings, the model's fingerprint, the memory it needs). Small galleries keep
the exact search of :class:`soundtwin.gallery.Gallery`.

    soundtwin embed MODEL corpus.parquet --out shards/ --engine ray
    soundtwin index build shards/ --out idx/ --kind ivfpq
    soundtwin index search idx/ query.wav --model MODEL
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .bulk import iter_shards, shard_files, shard_fingerprint
from .errors import DatasetError, SoundtwinError, require_extra
from .index import IVFPQIndex
from .io import atomic_write_text

KINDS = ("ivf", "ivfpq")


def _sample(shards: str | os.PathLike[str], n_total: int, size: int, seed: int) -> np.ndarray:
    """About ``size`` vectors drawn uniformly over the shards (one pass, a shard at a time)."""
    rng = np.random.default_rng(seed)
    keep = min(1.0, size / max(n_total, 1))
    parts = [v[rng.random(len(v)) < keep] for _p, _l, v in iter_shards(shards)]
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def build(shards: str | os.PathLike[str], out: str | os.PathLike[str], *, kind: str = "ivf",
          nlist: int | None = None, m: int = 32, nprobe: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Build an index over every vector of ``shards`` into the new folder ``out``; returns its ``index.json``."""
    require_extra("index", "indexes over embedding shards", "faiss")
    require_extra("scale", "indexes over embedding shards", "pyarrow")
    import faiss
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind not in KINDS:
        raise SoundtwinError(f"index kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out = Path(out)
    if out.exists():
        raise SoundtwinError(f"{out}: exists; give a new folder for the index (nothing there was changed)")
    fingerprint = shard_fingerprint(shards)
    n = sum(pq.read_metadata(f).num_rows for f in shard_files(shards))
    if n == 0:
        raise DatasetError(f"{shards}: no vectors")
    # 4 sqrt(n) cells, each trained on 39 points at least (faiss's floor)
    nlist = nlist or int(max(1, min(65536, 4 * np.sqrt(n), n // 39)))
    sample = _sample(shards, n, max(40 * nlist, 50_000), seed)
    d = sample.shape[1]
    if len(sample) < nlist:
        raise SoundtwinError(f"nlist={nlist} cells need at least as many vectors; the shards hold {len(sample)}")
    if kind == "ivf":
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        if len(sample) < 256 * 8:
            raise SoundtwinError(f"ivfpq trains 256 codes per sub-vector: it needs thousands of vectors, the shards "
                                 f"hold {n}; use --kind ivf (or exact search: a gallery) for so few")
        try:
            pq_index = IVFPQIndex(d, nlist=nlist, m=m)
        except ValueError as exc:
            raise SoundtwinError(str(exc)) from None
        index = pq_index.index
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent if out.parent.exists() else None))
    try:
        writer = None
        for paths, labels, vec in iter_shards(shards):
            index.add(np.ascontiguousarray(vec, dtype=np.float32))
            t = pa.table({"path": pa.array(paths, pa.string()), "label": pa.array(labels, pa.string())})
            writer = writer or pq.ParquetWriter(tmp / "rows.parquet", t.schema)
            writer.write_table(t)
        if writer is not None:
            writer.close()
        faiss.write_index(index, str(tmp / "index.faiss"))
        info = {"kind": kind, "n": int(index.ntotal), "dim": d, "nlist": nlist, "m": m if kind == "ivfpq" else None,
                "nprobe": nprobe or min(nlist, 64 if kind == "ivfpq" else 256), "fingerprint": fingerprint,
                "memory_bytes": pq_index.memory_bytes() if kind == "ivfpq" else
                int(index.ntotal) * (4 * d + 8) + nlist * d * 4,
                "file_bytes": (tmp / "index.faiss").stat().st_size, "shards": str(shards)}
        atomic_write_text(tmp / "index.json", json.dumps(info, indent=1) + "\n")
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


class ShardIndex:
    """A built index folder, opened for search (the vectors' paths and labels are read once)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        require_extra("index", "indexes over embedding shards", "faiss")
        require_extra("scale", "indexes over embedding shards", "pyarrow")
        import faiss
        import pyarrow.parquet as pq

        d = Path(folder)
        if not (d / "index.json").is_file():
            raise SoundtwinError(f"{d}: not an index folder (soundtwin index build makes one)")
        self.info = json.loads((d / "index.json").read_text(encoding="utf-8"))
        self.index = faiss.read_index(str(d / "index.faiss"))
        self.index.nprobe = int(self.info["nprobe"])
        rows = pq.read_table(d / "rows.parquet")
        self.paths = rows.column("path").to_pylist()
        self.labels = rows.column("label").to_pylist()

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int = 5) -> list[list[dict[str, Any]]]:
        """Top ``k`` neighbours of each query: path, label and cosine score, best first."""
        s, ids = self.index.search(np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32), k)
        return [[{"path": self.paths[i], "label": self.labels[i], "score": float(sc)}
                 for sc, i in zip(srow, irow, strict=True) if i >= 0] for srow, irow in zip(s, ids, strict=True)]
