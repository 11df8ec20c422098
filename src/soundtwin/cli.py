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


Runtime = Annotated[str, typer.Option(help="torch, onnx, or auto: onnx when the model holds its model.onnx "
                                             "(soundtwin export; starts much faster), else torch.")]


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
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a model already in --out (your other files there are kept).")] = False,
    export: Annotated[bool, typer.Option("--export/--no-export", help="Also write model.onnx for fast start (needs the onnx extra).")] = True,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also write the training curves to this PNG.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    cache: Cache = None,
    no_cache: NoCache = False,
) -> None:
    """Train a Siamese embedding model on labelled clips."""
    from tqdm import tqdm

    from .config import load_config
    from .train import train as run_train

    if resume:  # the run's own config, with only its length open to change
        from .config import apply_overrides, changed_keys, config_from_dict
        from .io import read_json
        from .store import version_dir

        if preset or config:
            raise SoundtwinError("--resume continues with the model's saved config: drop --preset / --config")
        try:
            saved = config_from_dict(read_json(version_dir(out) / "config.json"))
        except OSError:
            raise SoundtwinError(f"{out}: nothing to resume (no model there)") from None
        cfg = apply_overrides(saved, set_ or [])
        other = [k for k in changed_keys(saved, cfg) if k != "train.epochs"]
        if other:
            raise SoundtwinError(f"--resume continues the saved run; only train.epochs can change, not "
                                 f"{', '.join(other)} (train into a new --out for that)")
    else:
        cfg = load_config(preset=preset, config_file=config, overrides=set_ or [])
    typer.echo(f"training preset={cfg.preset} model={cfg.model.name} loss={cfg.loss.name} "
               f"features={cfg.features.kind} epochs={cfg.train.epochs} -> {out}")
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
        res = run_train(data, out, cfg, resume=resume, overwrite=overwrite, cache_dir=_cache(cache, no_cache),
                        on_epoch=epoch_line,
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
    for w in res.warnings:
        typer.echo(f"warning: {w}", err=True)
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
        from .io import atomic_write_bytes
        from .report import training_curves_png

        atomic_write_bytes(plot, training_curves_png([vars(h) for h in res.history]))
        typer.echo(f"training curves written to {plot}")
    typer.echo(f"done in {res.seconds:.1f}s: held-out EER {v.meta.get('heldout_eer', float('nan')):.4f}, "
               f"threshold {v.threshold:.4f} ({v.meta.get('threshold_rule')}), model in {out}")
    if export and res.diverged is None:
        _export_for_fast_start(v, out)


def _export_for_fast_start(v: Any, out: Path) -> None:
    """Also write model.onnx (when the onnx extra is installed), so that compare, embed, identify and verify
    start in about 0.5 s instead of torch's 2-3 s import. A failure is a warning: the model is saved."""
    import importlib.util

    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return
    try:
        import numpy as np

        from .export import default_onnx_path, export_onnx
        from .synth import SR, synth_clip

        rng = np.random.default_rng(0)
        export_onnx(v, default_onnx_path(out), check_clips=[v.features((synth_clip(k, rng), SR)) for k in ("whistle", "knock")])
        typer.echo(f"exported {default_onnx_path(out)} (commands on this model start in about 0.5 s)")
    except Exception as exc:  # noqa: BLE001 - the trained model is saved; only the fast path is missing
        typer.echo(f"warning: model.onnx not written ({exc}); commands fall back to torch", err=True)


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
    for w in ev.warnings:
        typer.echo(f"warning: {w}", err=True)
    out: dict[str, Any] = {"trials": len(ev.scores), "clips": ev.n_clips,
                           "clips_per_second": round(ev.n_clips / max(ev.embed_seconds, 1e-9), 1)}
    if ev.metrics is not None:
        out.update(ev.metrics.as_dict())
    out["warnings"] = ev.warnings
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
    runtime: Runtime = "auto",
) -> None:
    """Are two clips the same kind of sound? Prints score, threshold and decision."""
    from .gallery import load_verifier

    d = load_verifier(model, runtime).verify(a, b)
    for w in d.warnings:
        typer.echo(f"warning: {w}", err=True)
    if as_json:
        _echo_json({"a": str(a), "b": str(b), "score": d.score, "threshold": d.threshold, "same": d.same,
                    "probability": d.probability, "warnings": list(d.warnings)})
        return
    typer.echo(f"score {d.score:.4f}  threshold {d.threshold:.4f}  probability {d.probability:.3f}  "
               f"-> {'same' if d.same else 'different'}")


@app.command()
@handles_errors
def embed(
    model: ModelDir,
    inputs: Annotated[list[Path], typer.Argument(help="Clips, folders searched for audio files, or a path,label CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz (arrays: embeddings, paths, labels).")],
    runtime: Runtime = "auto",
) -> None:
    """Write embeddings of clips to a NumPy .npz file with their paths (and labels, from a CSV).

    Unreadable or silent files are skipped with a message and a count, as in training."""
    import io

    import numpy as np

    from .gallery import load_verifier
    from .io import atomic_write_bytes

    labels: list[str] = []
    if len(inputs) == 1 and inputs[0].suffix.lower() == ".csv":
        from .data import discover

        clips = discover(inputs[0])
        paths, labels = [c.path for c in clips], [c.label for c in clips]
    else:
        paths = _clip_args(inputs)
    v = load_verifier(model, runtime)
    feats, errors = v.extractor.from_files(paths, skip_errors=True)
    keep = [k for k, f in enumerate(feats) if f is not None]
    for _p, msg in errors:
        typer.echo(f"skipped: {msg}", err=True)
    if not keep:
        raise SoundtwinError(f"none of the {len(paths)} clips could be read")
    emb = v.embed_features([feats[k] for k in keep])  # type: ignore[misc]
    buf = io.BytesIO()
    arrays = {"embeddings": emb, "paths": np.array([str(paths[k]) for k in keep])}
    if labels:
        arrays["labels"] = np.array([labels[k] for k in keep])
    np.savez(buf, **arrays)
    atomic_write_bytes(out, buf.getvalue())
    typer.echo(f"wrote {emb.shape[0]} embeddings of dimension {emb.shape[1]} to {out}"
               + (f"; skipped {len(errors)} unreadable or silent clip(s)" if errors else ""))


@app.command()
@handles_errors
def demo(
    workdir: Annotated[Optional[Path], typer.Option(help="Where to write the synthetic data and model.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
) -> None:
    """Run the main job end to end on synthetic sounds: make data, train, evaluate, compare."""
    from .demo import run_demo

    run_demo(workdir, epochs=epochs, echo=typer.echo)


@app.command()
@handles_errors
def calibrate(
    model: ModelDir,
    far: Annotated[Optional[float], typer.Option("--far", help="Target false-accept rate; omit for the EER point.")] = None,
) -> None:
    """Move the model's stored threshold to the EER point or a target false-accept rate (held-out trials)."""
    from .verifier import Verifier

    from .modeldir import read_calibration
    from .store import locked

    with locked(model, purpose="calibrating"):  # no other writer between reading and writing the model
        v = Verifier.load(model)
        scores, labels = read_calibration(model)
        v.calibrate(scores, labels, far=far)
        v.save(model, carry=True)  # a new version: same weights (and model.onnx), new threshold
    typer.echo(f"threshold {v.threshold:.4f} ({v.meta['threshold_rule']}) stored in {model}")


def _clip_args(paths: list[Path]) -> list[Path]:
    from .audio import audio_extensions

    exts = audio_extensions()
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        else:
            out.append(p)
    if not out:
        raise SoundtwinError("no audio files among the inputs")
    return out


@app.command()
@handles_errors
def enroll(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory (created if missing).")],
    clips: Annotated[Optional[list[Path]], typer.Argument(help="A dataset (class folders or CSV), or clips with --label.")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Model directory (needed to create a gallery).")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Enroll the given clips under this class.")] = None,
    far: Annotated[Optional[float], typer.Option("--far", help="Set the gallery threshold at this false-accept rate.")] = None,
    scoring: Annotated[str, typer.Option(help="Class scoring for a new gallery: mean, max or topk.")] = "mean",
) -> None:
    """Create or extend a gallery from a dataset, or from clips under --label."""
    from .data import discover
    from .gallery import Gallery
    from .store import check_writable

    if check_writable(gallery, "gallery") == "existing":
        g = Gallery.load(gallery, model_dir=model)
    else:
        if model is None:
            raise SoundtwinError(f"{gallery}: no gallery yet; pass --model MODEL_DIR to create it")
        g = Gallery.create(gallery, model, scoring=scoring)
    if not clips:
        raise SoundtwinError("nothing to enroll: give a dataset, or --label NAME and clips")
    groups: dict[str, list[Path]] = {}
    if label is not None:
        groups[label] = _clip_args(clips)
    else:
        if len(clips) != 1:
            raise SoundtwinError("without --label, give exactly one dataset (class folders or a CSV)")
        for c in discover(clips[0]):
            groups.setdefault(c.label, []).append(c.path)
    from .gallery import check_label

    for lab in groups:
        check_label(lab)
    # embed first (the slow part), then add under the gallery's lock to what is on disk by then,
    # so an enrollment another process made meanwhile is kept
    embedded = {lab: g.verifier.embed(paths) for lab, paths in groups.items()}
    with g.transaction():
        for lab, emb in embedded.items():
            g.add_embeddings(lab, emb, [str(p) for p in groups[lab]])
        if far is not None:
            g.far = far
    added = {lab: len(paths) for lab, paths in groups.items()}
    typer.echo(f"enrolled {sum(added.values())} clip(s) in {len(added)} class(es) into {gallery}; "
               f"gallery has {len(g.classes)} classes, threshold {g.threshold:.4f} ({g.threshold_rule})")


@app.command("gallery")
@handles_errors
def gallery_cmd(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    action: Annotated[str, typer.Argument(help="list or remove")],
    label: Annotated[Optional[str], typer.Argument(help="Class to remove.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List a gallery's classes, or remove one."""
    if action == "list":  # from gallery.json alone: neither numpy nor the model is loaded
        from .galleryinfo import gallery_summary

        info = gallery_summary(gallery)
        if as_json:
            _echo_json(info)
        else:
            for name, n in info["classes"].items():
                typer.echo(f"{name}\t{n}")
    elif action == "remove":
        if not label:
            raise SoundtwinError("remove needs a LABEL")
        from .gallery import Gallery

        n = Gallery.load(gallery).remove(label)
        typer.echo(f"removed {label} ({n} clip(s)) from {gallery}")
    else:
        raise SoundtwinError(f"unknown action {action!r}: use list or remove")


@app.command()
@handles_errors
def identify(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    clips: Annotated[list[Path], typer.Argument(help="Clips to identify.")],
    top: Annotated[int, typer.Option("--top", help="How many classes to list.")] = 3,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Which enrolled class is each clip? 'unknown' when none clears the threshold."""
    from dataclasses import asdict

    from .gallery import Gallery

    g = Gallery.load(gallery)
    res = g.identify(_clip_args(clips), top=top)
    if as_json:
        _echo_json([asdict(r) for r in res])
        return
    for r in res:
        alts = ", ".join(f"{m.label} {m.score:.3f}" for m in r.matches)
        typer.echo(f"{r.clip}\t{r.label}\t({alts})")


@app.command()
@handles_errors
def verify(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    label: Annotated[str, typer.Argument(help="Enrolled class to verify against.")],
    clips: Annotated[list[Path], typer.Argument(help="Clips to verify.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Is each clip of class LABEL? yes/no with its score."""
    from .gallery import Gallery

    g = Gallery.load(gallery)
    paths = _clip_args(clips)
    res = g.verify(label, paths)
    for d in res:
        for w in d.warnings:
            typer.echo(f"warning: {w}", err=True)
    if as_json:
        _echo_json([{"clip": str(p), "label": label, "score": d.score, "threshold": d.threshold, "same": d.same,
                     "probability": d.probability, "warnings": list(d.warnings)} for p, d in zip(paths, res)])
        return
    for p, d in zip(paths, res):
        typer.echo(f"{p}\t{'yes' if d.same else 'no'}\tscore {d.score:.3f}\tprobability {d.probability:.2f}")


@app.command("scan")
@handles_errors
def scan_cmd(
    gallery: Annotated[Path, typer.Argument(help="Gallery directory.")],
    recording: Annotated[Path, typer.Argument(help="A recording of any length.")],
    window: Annotated[float, typer.Option(help="Window length in seconds.")] = 1.0,
    hop: Annotated[float, typer.Option(help="Hop between windows in seconds.")] = 0.5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write segments to .csv or .json.")] = None,
) -> None:
    """Find enrolled sounds in a long recording: start,end,label,score segments."""
    import csv
    import io

    from .gallery import Gallery
    from .io import atomic_write_text
    from .scan import scan

    segs = scan(Gallery.load(gallery), recording, window=window, hop=hop)
    if out is not None and out.suffix.lower() == ".json":
        text = json.dumps([s.as_dict() for s in segs], indent=1) + "\n"
    else:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["start", "end", "label", "score"])
        for s in segs:
            w.writerow([f"{s.start:.2f}", f"{s.end:.2f}", s.label, f"{s.score:.4f}"])
        text = buf.getvalue()
    if out is not None:
        atomic_write_text(out, text)
        typer.echo(f"{len(segs)} segment(s) written to {out}")
    else:
        typer.echo(text, nl=False)


@app.command("fewshot")
@handles_errors
def fewshot_cmd(
    model: ModelDir,
    test_csv: Annotated[Path, typer.Argument(help="Labelled clips (path,label CSV or class folders).")],
    ways: Annotated[int, typer.Option("--ways")] = 5,
    shots: Annotated[int, typer.Option("--shots")] = 1,
    episodes: Annotated[int, typer.Option("--episodes")] = 500,
    queries: Annotated[int, typer.Option("--queries", help="Queries per class per episode.")] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    scoring: Annotated[str, typer.Option(help="mean, max or topk.")] = "mean",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """N-way K-shot accuracy with a 95% confidence interval."""
    from .fewshot import fewshot
    from .verifier import Verifier

    r = fewshot(Verifier.load(model), test_csv, ways=ways, shots=shots, episodes=episodes, queries=queries,
                seed=seed, scoring=scoring)
    if as_json:
        _echo_json(r.as_dict())
        return
    typer.echo(f"{r.ways}-way {r.shots}-shot accuracy {r.accuracy:.4f} +/- {r.ci95:.4f} (95% CI, "
               f"{r.episodes} episodes, {r.queries_per_class} queries/class, {r.scoring} scoring)")


def limit_math_threads(n: int, *, torch_too: bool) -> None:
    """Cap numpy's BLAS (and torch's intra-op pool) at ``n`` threads for the rest of the process.

    A server runs requests side by side; letting each one's matrix products spread over every core as
    well oversubscribes them: under 16 concurrent clients on 2 cores this halved throughput
    (benchmarks/RESULTS.md, "HTTP service under load")."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")
    if torch_too:
        import torch

        torch.set_num_threads(n)


@app.command()
@handles_errors
def serve(
    model: ModelDir,
    gallery: Annotated[Optional[Path], typer.Option("--gallery", help="Gallery directory (created on first enrollment).")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_bytes: Annotated[int, typer.Option(help="Largest accepted upload in bytes.")] = 10 * 1024 * 1024,
    max_seconds: Annotated[float, typer.Option(help="Longest accepted clip in seconds.")] = 30.0,
    runtime: Annotated[str, typer.Option(help="torch or onnx.")] = "torch",
    threads_per_request: Annotated[int, typer.Option(min=1, help="Math threads each request may use (requests already run in parallel).")] = 1,
    max_files: Annotated[int, typer.Option(min=1, help="Most uploads in one request.")] = 16,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Largest request body in bytes (refused as soon as it passes).")] = 64 * 1024 * 1024,
    upload_timeout: Annotated[float, typer.Option(help="Seconds a request body may take to arrive.")] = 30.0,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Threads decoding and computing (default: cores / threads-per-request).")] = None,
) -> None:
    """Serve the model over HTTP with a web page at / (needs the 'server' extra)."""
    import os
    import socket

    try:
        import uvicorn

        from .server import create_app
    except ImportError as exc:
        raise SoundtwinError(f"the server needs the 'server' extra: pip install 'soundtwin[server]' ({exc.name} missing)") from None
    if runtime not in ("torch", "onnx"):
        raise SoundtwinError(f"--runtime must be torch or onnx, got {runtime!r}")
    try:  # say the port is taken before anything else
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise SoundtwinError(f"cannot listen on {host}:{port} ({exc.strerror}): is another server using the port?") from None
    limit_math_threads(threads_per_request, torch_too=runtime == "torch")
    n_workers = workers or max(1, (os.cpu_count() or 1) // threads_per_request)
    app_ = create_app(model, gallery, max_bytes=max_bytes, max_seconds=max_seconds, runtime=runtime,
                      max_files=max_files, max_request_bytes=max_request_bytes, upload_timeout=upload_timeout,
                      workers=n_workers)
    typer.echo(f"serving {model} on http://{host}:{port}/ (docs at /docs)")
    sock.listen(2048)
    config = uvicorn.Config(app_, log_level="warning", timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])


@app.command()
@handles_errors
def export(
    model: ModelDir,
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="Output file (default MODEL_DIR/model.onnx).")] = None,
    check: Annotated[Optional[list[Path]], typer.Option("--check", help="Real clips to compare torch and ONNX on.")] = None,
) -> None:
    """Export the encoder to ONNX (variable time axis), checked against torch (max abs diff <= 1e-4)."""
    import importlib.util

    for mod in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(mod) is None:
            raise SoundtwinError(f"export needs the 'onnx' extra: pip install 'soundtwin[onnx]' ({mod} missing)")
    from .export import default_onnx_path, export_onnx
    from .synth import SR, synth_clip
    from .verifier import Verifier

    import numpy as np

    v = Verifier.load(model)
    rng = np.random.default_rng(0)
    clips = [v.features(p) for p in (check or [])]
    clips += [v.features((synth_clip(k, rng), SR)) for k in ("whistle", "knock")]
    out = onnx or default_onnx_path(model)
    worst = export_onnx(v, out, check_clips=clips)
    typer.echo(f"wrote {out}: largest |torch - onnxruntime| = {worst:.2e} over random features and {len(clips)} clip(s)")


@app.command()
@handles_errors
def report(
    model: ModelDir,
    trials: Annotated[Path, typer.Argument(help="Labelled trial list.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its PNGs.")],
    labels: Annotated[Optional[Path], typer.Option("--labels", help="path,label CSV of the test clips (default: test.csv beside TRIALS).")] = None,
) -> None:
    """A self-contained HTML report: ROC/DET, score histograms, embedding map, worst errors, training curves."""
    from .report import build_report
    from .verifier import Verifier

    page = build_report(Verifier.load(model), trials, out, labels_csv=labels)
    typer.echo(f"report written to {page}")


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
