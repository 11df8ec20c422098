"""Bulk embedding: a corpus of clips to Parquet shards of ``(path, label, vector)``, in this process or across Ray
Data actors (the ``scale`` extra), never holding more than one chunk of audio or embeddings at a time.

The unit of work is a *chunk* of ``chunk`` clips in input order, embedded by the same function whichever engine runs
it, so the two engines write the same vectors. Each output shard is one chunk's rows; the file metadata names the
model's fingerprint, so a gallery or an index refuses vectors of another model. ``enroll --embeddings`` and
``soundtwin index build`` read the shards back a chunk at a time (:func:`iter_shards`).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError, SoundtwinError, require_extra

#: The shards' file-metadata keys.
FINGERPRINT, MODEL, DIM = b"soundtwin.fingerprint", b"soundtwin.model", b"soundtwin.dim"
SHARD = "part-{:05d}.parquet"


def read_inputs(source: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """``(paths, labels)`` of a corpus: a folder (class sub-folders give labels; loose files get ``""``), a
    ``path[,label]`` CSV, or a Parquet manifest with a ``path`` column (and ``label``). Relative paths resolve
    against the manifest's folder. Only names are held, not audio."""
    src = Path(source)
    if src.is_dir():
        from .data import audio_files

        files = audio_files(src)
        if not files:
            raise DatasetError(f"{src}: no audio files")
        return [str(f) for f in files], [f.relative_to(src).parts[0] if len(f.relative_to(src).parts) > 1 else ""
                                         for f in files]
    if not src.is_file():
        raise DatasetError(f"{src}: no such folder or manifest")
    if src.suffix.lower() == ".parquet":
        require_extra("scale", "Parquet manifests", "pyarrow")
        import pyarrow.parquet as pq

        t = pq.read_table(src)
        if "path" not in t.column_names:
            raise DatasetError(f"{src}: a Parquet manifest needs a 'path' column (has {', '.join(t.column_names)})")
        paths = [str(p) for p in t.column("path").to_pylist()]
        labels = [str(x or "") for x in t.column("label").to_pylist()] if "label" in t.column_names else [""] * len(paths)
    elif src.suffix.lower() == ".csv":
        with open(src, newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        if "label" in [c.strip() for c in header]:  # a labelled manifest: the one reader training uses
            from .data import read_manifest

            clips = read_manifest(src)
            return [str(c.path) for c in clips], [c.label for c in clips]
        with open(src, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "path" not in rows[0]:
            raise DatasetError(f"{src}: a CSV manifest needs a 'path' column")
        paths, labels = [r["path"] for r in rows], [""] * len(rows)
    else:
        raise DatasetError(f"{src}: expected a folder, a .csv or a .parquet manifest")
    paths = [p if Path(p).is_absolute() else str(src.parent / p) for p in paths]
    return paths, labels


def shard_table(paths: Sequence[str], labels: Sequence[str], vectors: np.ndarray) -> Any:
    """The Arrow table of a shard: ``path`` and ``label`` strings, ``vector`` a fixed-size list of float32."""
    import pyarrow as pa

    v = np.ascontiguousarray(vectors, np.float32)
    if v.ndim != 2 or len(v) != len(paths) or len(paths) != len(labels):
        raise SoundtwinError(f"a shard needs one path, label and vector per row (got {len(paths)}, {len(labels)}, "
                             f"{v.shape})")
    return pa.table({"path": pa.array([str(p) for p in paths], pa.string()),
                     "label": pa.array([str(x) for x in labels], pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])})


def write_shard(path: str | os.PathLike[str], table: Any, *, fingerprint: str, model: str = "") -> None:
    """Write one shard atomically, naming the model that embedded it in the file's metadata."""
    import pyarrow.parquet as pq

    path = Path(path)
    d = table.schema.field("vector").type.list_size
    meta = {FINGERPRINT: fingerprint.encode(), MODEL: model.encode(), DIM: str(d).encode()}
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table.replace_schema_metadata(meta), tmp)
    os.replace(tmp, path)


def embed_chunk(verifier: Any, paths: Sequence[str], labels: Sequence[str]) -> tuple[Any, list[str]]:
    """One chunk's shard table, and the messages of clips that could not be read."""
    feats, errors = verifier.extractor.from_files(list(paths), skip_errors=True)
    keep = [k for k, f in enumerate(feats) if f is not None]
    d = verifier.cfg.model.embedding_dim
    emb = verifier.embed_features([feats[k] for k in keep]) if keep else np.zeros((0, d), np.float32)
    return shard_table([paths[k] for k in keep], [labels[k] for k in keep], emb), [msg for _p, msg in errors]


def _out_dir(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SoundtwinError(f"{out}: exists and is not an empty folder; give a new folder for the shards "
                             f"(nothing there was changed)")
    out.mkdir(parents=True, exist_ok=True)
    return out


def embed_to_parquet(model: str | os.PathLike[str], source: str | os.PathLike[str], out: str | os.PathLike[str], *,
                     engine: str = "local", workers: int = 2, chunk: int = 256, runtime: str = "torch",
                     threads: int = 1, device: str = "cpu") -> dict[str, Any]:
    """Embed every clip of ``source`` with ``model`` into Parquet shards under ``out`` (a new or empty folder).
    ``engine="ray"``: ``workers`` Ray actors, one model each, ``threads`` torch threads each (and one GPU each
    with ``device="cuda"``). Returns a summary (clips written, skipped, shards, seconds)."""
    require_extra("scale", "Parquet shards", "pyarrow")
    import time

    paths, labels = read_inputs(source)
    out_dir = _out_dir(Path(out))
    starts = list(range(0, len(paths), chunk))
    t0 = time.perf_counter()
    if engine == "local":
        from .runtime import load_verifier

        import torch

        torch.set_num_threads(threads)
        v = load_verifier(model, runtime, device=device)
        written, skipped = 0, []
        for k, s in enumerate(starts):
            table, errors = embed_chunk(v, paths[s:s + chunk], labels[s:s + chunk])
            write_shard(out_dir / SHARD.format(k), table, fingerprint=v.fingerprint, model=str(model))
            written, skipped = written + table.num_rows, skipped + errors
    elif engine == "ray":
        written, skipped, startup = _ray(model, paths, labels, starts, chunk, out_dir, workers, runtime, threads,
                                         device)
    else:
        raise SoundtwinError(f"engine must be local or ray, got {engine!r}")
    return {"clips": len(paths), "written": written, "skipped": len(skipped), "errors": skipped[:20],
            "shards": len(starts), "seconds": round(time.perf_counter() - t0, 2), "engine": engine,
            "startup_seconds": round(startup, 2) if engine == "ray" else 0.0,
            "workers": workers if engine == "ray" else 1, "device": device, "out": str(out_dir)}


class _RayEmbedder:
    """A Ray actor: loads the model once, then embeds chunk after chunk and writes each chunk's shard."""

    def __init__(self, model: str, runtime: str, threads: int, out_dir: str, device: str = "cpu") -> None:
        import torch

        from .runtime import load_verifier

        torch.set_num_threads(threads)
        self.v = load_verifier(model, runtime, device=device)
        self.model = model
        self.out_dir = Path(out_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        written, errors = [], []
        for k, paths, labels in zip(batch["k"], batch["paths"], batch["labels"], strict=True):
            table, errs = embed_chunk(self.v, list(paths), list(labels))
            write_shard(self.out_dir / SHARD.format(int(k)), table, fingerprint=self.v.fingerprint, model=self.model)
            written.append(table.num_rows)
            errors.append("\n".join(errs))
        return {"k": batch["k"], "written": np.array(written), "errors": np.array(errors, dtype=object)}


def _ray(model: str | os.PathLike[str], paths: list[str], labels: list[str], starts: list[int], chunk: int,
         out_dir: Path, workers: int, runtime: str, threads: int, device: str = "cpu"
         ) -> tuple[int, list[str], float]:
    """(clips written, messages of clips skipped, seconds to start the local Ray instance)."""
    require_extra("scale", "bulk embedding on Ray", "ray")
    import time

    import ray

    t0 = time.perf_counter()
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _temp_dir=tempfile.mkdtemp(prefix="soundtwin-ray-"))
    import logging

    logging.getLogger("ray").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    startup = time.perf_counter() - t0
    try:
        items = [{"k": k, "paths": paths[s:s + chunk], "labels": labels[s:s + chunk]} for k, s in enumerate(starts)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), workers * 4)))
        res = ds.map_batches(_RayEmbedder, fn_constructor_args=(str(model), runtime, threads, str(out_dir), device),
                             batch_size=1, concurrency=workers, num_cpus=threads, batch_format="numpy",
                             **({"num_gpus": 1} if device.startswith("cuda") else {}))
        written, errors = 0, []
        for row in res.iter_rows():
            written += int(row["written"])
            errors += [e for e in str(row["errors"]).split("\n") if e]
        return written, errors, startup
    finally:
        if started:
            ray.shutdown()


def shard_files(source: str | os.PathLike[str]) -> list[Path]:
    """The Parquet shards of a folder (sorted), or the one file given."""
    src = Path(source)
    files = sorted(src.glob("*.parquet")) if src.is_dir() else [src]
    if not files or not all(f.is_file() for f in files):
        raise DatasetError(f"{src}: no Parquet shards (write them with soundtwin embed ... --out FOLDER)")
    return files


def shard_fingerprint(source: str | os.PathLike[str]) -> str:
    """The model fingerprint every shard names (one, or :class:`DatasetError`)."""
    require_extra("scale", "Parquet shards", "pyarrow")
    import pyarrow.parquet as pq

    prints = set()
    for f in shard_files(source):
        meta = pq.read_schema(f).metadata or {}
        if FINGERPRINT not in meta:
            raise DatasetError(f"{f}: not a soundtwin embedding shard (no model fingerprint in its metadata)")
        prints.add(meta[FINGERPRINT].decode())
    if len(prints) != 1:
        raise DatasetError(f"{source}: shards of {len(prints)} different models")
    return prints.pop()


def iter_shards(source: str | os.PathLike[str]) -> Iterator[tuple[list[str], list[str], np.ndarray]]:
    """``(paths, labels, vectors)`` one shard at a time."""
    require_extra("scale", "Parquet shards", "pyarrow")
    import pyarrow.parquet as pq

    for f in shard_files(source):
        t = pq.read_table(f)
        if not {"path", "label", "vector"} <= set(t.column_names):
            raise DatasetError(f"{f}: expected columns path, label, vector (has {', '.join(t.column_names)})")
        col = t.column("vector").combine_chunks()
        d = col.type.list_size
        vec = col.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)
        yield t.column("path").to_pylist(), t.column("label").to_pylist(), vec
