"""``soundtwin train``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import SoundtwinError
from .common import Cache, Device, NoCache, cache_arg, command, warn

@command()
def train(
    data: Annotated[Path, typer.Argument(help="Folder with one sub-folder per class, or a path,label CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    preset: Annotated[Optional[str], typer.Option(help="default, tutorial, or sound (self-supervised pretraining).")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML, JSON or TOML config file (a model's config.json too).")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override, e.g. --set train.epochs=5.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out.")] = False,
    from_: Annotated[Optional[str], typer.Option("--from", help="Fine-tune: start from this model directory or "
                                                                "built-in model (soundtwin models), keeping its "
                                                                "front end and encoder.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out (your other files there are kept).")] = False,
    export: Annotated[bool, typer.Option("--export/--no-export", help="Also write model.onnx for fast start (needs the onnx extra).")] = True,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write the training curves to this PNG.")] = None,
    device: Device = "cpu",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    cache: Cache = None,
    no_cache: NoCache = False,
    nproc: Annotated[int, typer.Option("--nproc", help="Train on this many processes (runs torchrun: each reads "
                                                       "its own shard; gloo on CPU, NCCL on GPUs).", min=1)] = 1,
) -> None:
    """Train a Siamese embedding model on labelled clips."""
    import os

    from tqdm import tqdm

    if nproc > 1 and int(os.environ.get("WORLD_SIZE", 1)) == 1:  # this command again, on nproc processes
        args = ["train", str(data), "--out", str(out), "--device", device,
                *(["--preset", preset] if preset else []), *(["--config", str(config)] if config else []),
                *sum((["--set", x] for x in set_ or []), []), *(["--resume"] if resume else []),
                *(["--from", from_] if from_ else []), *(["--overwrite"] if overwrite else []),
                *([] if export else ["--no-export"]), *(["--plot", str(plot)] if plot else []),
                *(["--quiet"] if quiet else []), *(["--cache", str(cache)] if cache else []),
                *(["--no-cache"] if no_cache else [])]
        code = _torchrun(nproc, args)
        if code:
            raise SoundtwinError(f"training on {nproc} processes failed (torchrun exit code {code}; see above)")
        return
    rank = int(os.environ.get("RANK", 0))
    quiet = quiet or rank != 0

    from ..config import load_config
    from ..training import train as run_train

    if resume:  # the run's own config, with only its length open to change
        from ..config import apply_overrides, changed_keys
        from ..runtime.modeldir import read_config

        if preset or config:
            raise SoundtwinError("--resume continues with the model's saved config: drop --preset / --config")
        saved = read_config(out)
        cfg = apply_overrides(saved, set_ or [])
        other = [k for k in changed_keys(saved, cfg) if k != "train.epochs"]
        if other:
            raise SoundtwinError(f"--resume continues the saved run; only train.epochs can change, not "
                                 f"{', '.join(other)} (train into a new --out for that)")
    elif from_ is not None:
        from ..training import finetune_config

        if preset or config:
            raise SoundtwinError("--from keeps the source model's config: drop --preset / --config (use --set)")
        cfg = finetune_config(from_, set_ or [])
    else:
        cfg = load_config(preset=preset, config_file=config, overrides=set_ or [])
    if rank == 0:
        typer.echo(("" if from_ is None else f"fine-tuning {from_}: ") +
                   f"training preset={cfg.preset} model={cfg.model.name} loss={cfg.loss.name} "
                   f"features={cfg.features.kind} epochs={cfg.train.epochs} -> {out}"
                   + (f" on {os.environ['WORLD_SIZE']} processes" if "WORLD_SIZE" in os.environ else ""))
    bars: dict[str, tqdm] = {}

    def bar(name: str, desc: str, unit: str) -> Callable[[int], None]:
        def total(n: int) -> None:
            # a bar only on a terminal: redirected to a file, bars are cursor codes and stale lines
            bars[name] = tqdm(total=n, desc=desc, unit=unit, disable=quiet or not sys.stderr.isatty(), leave=False,
                              file=sys.stderr)
        return total

    def tick(name: str) -> Callable[[int], None]:
        return lambda n: bars[name].update(n) if name in bars else None

    def epoch_line(e: Any) -> None:
        line = (f"epoch {e.epoch:3d}/{e.epochs}  loss {e.loss:.4f}  held-out EER {e.heldout_eer:.4f}  "
                f"lr {e.lr:.2e}  {e.seconds:.1f}s")
        (tqdm.write if not quiet and sys.stderr.isatty() else typer.echo)(line)

    try:
        res = run_train(data, out, cfg, resume=resume, overwrite=overwrite, device=device, init_from=from_,
                        cache_dir=cache_arg(cache, no_cache),
                        on_epoch=epoch_line,
                        on_step=tick("steps"), on_steps_total=bar("steps", "train", "step"),
                        on_clip=tick("clips"), on_clips_total=bar("clips", "features", "clip"))
    except KeyboardInterrupt:
        for b in bars.values():
            b.close()
        from ..runtime.modeldir import is_model

        ok = is_model(out)
        typer.echo(f"interrupted: {'model saved in ' + str(out) + ' (continue with --resume)' if ok else 'nothing saved'}",
                   err=True)
        raise typer.Exit(130) from None
    finally:
        for b in bars.values():
            b.close()
    if rank != 0:  # rank 0 reports and exports
        return
    warn(res.warnings)
    for _path, msg in res.skipped:
        typer.echo(f"skipped: {msg}", err=True)
    if res.skipped:
        typer.echo(f"skipped {len(res.skipped)} unreadable clip(s)", err=True)
    if res.diverged is not None:
        hint = " (loss.distance_eps=0, the tutorial's exact distance, has an infinite gradient where two " \
               "embeddings coincide; set it > 0 to avoid this)" if res.verifier.cfg.loss.uses_pairs and not res.verifier.cfg.loss.distance_eps else ""
        typer.echo(f"training diverged: {res.diverged}{hint}; stopped there and kept the weights of the step "
                   f"before", err=True)
    v = res.verifier
    if plot is not None:
        from ..io import atomic_write_bytes
        from ..report import training_curves_png

        atomic_write_bytes(plot, training_curves_png([vars(h) for h in res.history]))
        typer.echo(f"training curves written to {plot}")
    typer.echo(f"done in {res.seconds:.1f}s: held-out EER {v.meta.get('heldout_eer', float('nan')):.4f}, "
               f"threshold {v.threshold:.4f} ({v.meta.get('threshold_rule')}), model in {out}")
    if export and res.diverged is None:
        _export_for_fast_start(v, out)


def _torchrun(nproc: int, args: list[str]) -> int:
    """``soundtwin ARGS`` on ``nproc`` processes under torchrun (on this machine); its exit code."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "soundtwin", *args]
    typer.echo(f"training on {nproc} processes: torchrun --standalone --nproc-per-node={nproc} -m soundtwin "
               + " ".join(args), err=True)
    return subprocess.call(cmd)


def _export_for_fast_start(v: Any, out: Path) -> None:
    """Also write model.onnx (when the onnx extra is installed), so that compare, embed, identify and verify
    start in about 0.5 s instead of torch's 2-3 s import. A failure is a warning: the model is saved."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return
    try:
        from ..runtime.export import check_clips, export_onnx
        from ..runtime.modeldir import onnx_path

        export_onnx(v, onnx_path(out), check_clips=check_clips(v))
        typer.echo(f"exported {onnx_path(out)} (commands on this model start in about 0.5 s)")
    except Exception as exc:  # noqa: BLE001 - the trained model is saved; only the fast path is missing
        typer.echo(f"warning: model.onnx not written ({exc}); commands fall back to torch", err=True)
