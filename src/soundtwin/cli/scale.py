"""``soundtwin index build|search``: indexes over embedding shards, for galleries larger than memory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SoundtwinError
from .common import AsJson, app, echo_json, handles_errors

index_app = typer.Typer(no_args_is_help=True, help="Search indexes over embedding shards (galleries beyond memory).")
app.add_typer(index_app, name="index")


@index_app.command("build")
@handles_errors
def build(
    shards: Annotated[Path, typer.Argument(help="Parquet shards (soundtwin embed MODEL DATA --out FOLDER).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="A new folder for the index.")],
    kind: Annotated[str, typer.Option(help="ivf (vectors kept whole) or ivfpq (m bytes a vector: 10 million and "
                                           "more).")] = "ivf",
    nlist: Annotated[Optional[int], typer.Option(help="IVF cells (default 4 * sqrt(n)).", min=1)] = None,
    m: Annotated[int, typer.Option(help="ivfpq: bytes per vector (sub-quantisers); divides the dimension.",
                                   min=1)] = 32,
    nprobe: Annotated[Optional[int], typer.Option(help="Cells visited per query (stored; default 256 ivf, 64 "
                                                       "ivfpq).", min=1)] = None,
    as_json: AsJson = False,
) -> None:
    """Build an IVF or IVF-PQ index over every vector of the shards, a shard at a time."""
    from ..shardindex import build as build_index

    info = build_index(shards, out, kind=kind, nlist=nlist, m=m, nprobe=nprobe)
    if as_json:
        return echo_json(info)
    typer.echo(f"indexed {info['n']} vectors ({info['kind']}, nlist {info['nlist']}) into {out}; it needs about "
               f"{info['memory_bytes'] / 2**20:.1f} MiB of memory")


@index_app.command("search")
@handles_errors
def search(
    index: Annotated[Path, typer.Argument(help="An index folder (soundtwin index build).")],
    clips: Annotated[list[Path], typer.Argument(help="Query clips.")],
    model: Annotated[Path, typer.Option("--model", help="The model (directory or built-in) that embedded the shards.")],
    top: Annotated[int, typer.Option(help="Neighbours per clip.", min=1)] = 5,
    as_json: AsJson = False,
) -> None:
    """The nearest enrolled clips of each query clip (path, label, cosine score)."""
    from ..runtime import load_verifier
    from ..shardindex import ShardIndex

    ix = ShardIndex(index)
    v = load_verifier(model, "auto")
    if v.fingerprint != ix.info["fingerprint"]:
        raise SoundtwinError(f"{index}: built from another model's embeddings (fingerprint {ix.info['fingerprint']}) "
                             f"than {model} ({v.fingerprint})")
    hits = ix.search(v.embed([str(c) for c in clips]), top)
    if as_json:
        return echo_json([{"clip": str(c), "neighbours": h} for c, h in zip(clips, hits, strict=True)])
    for c, h in zip(clips, hits, strict=True):
        typer.echo(f"{c}: " + "; ".join(f"{x['label'] or '-'} {x['score']:.3f} {x['path']}" for x in h))
