"""The ``soundtwin`` command line. Errors become one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from .errors import SoundtwinError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Siamese-network audio verification and few-shot sound recognition.")

F = TypeVar("F", bound=Callable[..., Any])


def _fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn library errors into a one-line message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SoundtwinError as exc:
            _fail(str(exc))

    return wrapper  # type: ignore[return-value]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=None, sort_keys=True))


ModelDir = Annotated[Path, typer.Argument(help="A trained model directory.", show_default=False)]
Cache = Annotated[Optional[Path], typer.Option("--cache", help="Feature cache folder (default ~/.cache/soundtwin).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]


def _cache(cache: Optional[Path], no_cache: bool) -> Path | None | bool:
    return False if no_cache else cache


@app.command()
@handles_errors
def train(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class, or a path,label CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    preset: Annotated[Optional[str], typer.Option(help="tutorial or default.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML or TOML config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override, e.g. --set train.epochs=5.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    cache: Cache = None,
    no_cache: NoCache = False,
) -> None:
    """Train a Siamese embedding model on labelled clips."""
    from tqdm import tqdm

    from .config import load_config
    from .train import train as run_train

    cfg = load_config(preset=preset, config_file=config, overrides=set_ or [])
    typer.echo(f"training preset={cfg.preset} model={cfg.model.name} loss={cfg.loss.name} "
               f"features={cfg.features.kind} epochs={cfg.train.epochs} -> {out}")
    bars: dict[str, tqdm] = {}

    def bar(name: str, desc: str, unit: str) -> Callable[[int], None]:
        def total(n: int) -> None:
            bars[name] = tqdm(total=n, desc=desc, unit=unit, disable=quiet, leave=False, file=sys.stderr)
        return total

    def tick(name: str) -> Callable[[int], None]:
        return lambda n: bars[name].update(n) if name in bars else None

    def epoch_line(e: Any) -> None:
        line = (f"epoch {e.epoch:3d}/{e.epochs}  loss {e.loss:.4f}  held-out EER {e.heldout_eer:.4f}  "
                f"lr {e.lr:.2e}  {e.seconds:.1f}s")
        (tqdm.write if not quiet else typer.echo)(line)

    try:
        res = run_train(data, out, cfg, resume=resume, cache_dir=_cache(cache, no_cache), on_epoch=epoch_line,
                        on_step=tick("steps"), on_steps_total=bar("steps", "train", "step"),
                        on_clip=tick("clips"), on_clips_total=bar("clips", "features", "clip"))
    except KeyboardInterrupt:
        for b in bars.values():
            b.close()
        ok = (out / "meta.json").is_file()
        typer.echo(f"interrupted: {'model saved in ' + str(out) + ' (continue with --resume)' if ok else 'nothing saved'}",
                   err=True)
        raise typer.Exit(130) from None
    finally:
        for b in bars.values():
            b.close()
    for path, msg in res.skipped:
        typer.echo(f"skipped: {msg}", err=True)
    if res.skipped:
        typer.echo(f"skipped {len(res.skipped)} unreadable clip(s)", err=True)
    v = res.verifier
    typer.echo(f"done in {res.seconds:.1f}s: held-out EER {v.meta.get('heldout_eer', float('nan')):.4f}, "
               f"threshold {v.threshold:.4f} ({v.meta.get('threshold_rule')}), model in {out}")


@app.command()
@handles_errors
def evaluate(
    model: ModelDir,
    trials: Annotated[Path, typer.Argument(help="Trial list: 'LABEL PATH_A PATH_B' lines (or 'PATH_A PATH_B').")],
    scores: Annotated[Optional[Path], typer.Option("--scores", help="Write 'PATH_A PATH_B SCORE' lines here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as one JSON object.")] = False,
    cache: Cache = None,
    no_cache: NoCache = False,
) -> None:
    """Score a trial list and print EER, ROC AUC, minDCF and accuracy at the stored threshold."""
    from .evaluate import evaluate as run_eval
    from .evaluate import write_scores
    from .verifier import Verifier

    v = Verifier.load(model, cache_dir=_cache(cache, no_cache))
    ev = run_eval(v, trials)
    if scores:
        write_scores(scores, ev)
    out: dict[str, Any] = {"trials": len(ev.scores), "clips": ev.n_clips,
                           "clips_per_second": round(ev.n_clips / max(ev.embed_seconds, 1e-9), 1)}
    if ev.metrics is not None:
        out.update(ev.metrics.as_dict())
    if as_json:
        _echo_json(out)
        return
    typer.echo(f"{out['trials']} trials over {out['clips']} clips ({out['clips_per_second']} clips/s)")
    if ev.metrics is None:
        typer.echo("no labelled trials: scores only")
        return
    m = ev.metrics
    typer.echo(f"EER      {m.eer:.4f}\nROC AUC  {m.roc_auc:.4f}\nminDCF   {m.min_dcf:.4f} (P_target 0.01)\n"
               f"accuracy {m.accuracy:.4f} at stored threshold {m.threshold:.4f}")


@app.command()
@handles_errors
def compare(
    model: ModelDir,
    a: Annotated[Path, typer.Argument(help="First clip.")],
    b: Annotated[Path, typer.Argument(help="Second clip.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Are two clips the same kind of sound? Prints score, threshold and decision."""
    from .verifier import Verifier

    d = Verifier.load(model).verify(a, b)
    if as_json:
        _echo_json({"a": str(a), "b": str(b), "score": d.score, "threshold": d.threshold, "same": d.same,
                    "probability": d.probability})
        return
    typer.echo(f"score {d.score:.4f}  threshold {d.threshold:.4f}  probability {d.probability:.3f}  "
               f"-> {'same' if d.same else 'different'}")


@app.command()
@handles_errors
def embed(
    model: ModelDir,
    inputs: Annotated[list[Path], typer.Argument(help="Clips, or folders searched for audio files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz (arrays: embeddings, paths).")],
) -> None:
    """Write embeddings of clips to a NumPy .npz file with their paths."""
    import io

    import numpy as np

    from .audio import audio_extensions
    from .io import atomic_write_bytes
    from .verifier import Verifier

    exts = audio_extensions()
    paths: list[Path] = []
    for p in inputs:
        if p.is_dir():
            paths += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        else:
            paths.append(p)
    if not paths:
        raise SoundtwinError("no audio files among the inputs")
    emb = Verifier.load(model).embed(paths)
    buf = io.BytesIO()
    np.savez(buf, embeddings=emb, paths=np.array([str(p) for p in paths]))
    atomic_write_bytes(out, buf.getvalue())
    typer.echo(f"wrote {emb.shape[0]} embeddings of dimension {emb.shape[1]} to {out}")


@app.command()
@handles_errors
def demo(
    workdir: Annotated[Optional[Path], typer.Option(help="Where to write the synthetic data and model.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
) -> None:
    """Run the main job end to end on synthetic sounds: make data, train, evaluate, compare."""
    from .demo import run_demo

    run_demo(workdir, epochs=epochs, echo=typer.echo)


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
