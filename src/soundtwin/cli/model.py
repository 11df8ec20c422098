"""Commands on a model: evaluate, compare, info, embed, fewshot, report, calibrate, export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import SoundtwinError
from .common import AsJson, Cache, Device, ModelDir, NoCache, Runtime, Threshold, cache_arg, command, echo_json, warn

@command()
def evaluate(
    model: ModelDir,
    trials: Annotated[Path, typer.Argument(help="Trial list: 'LABEL PATH_A PATH_B' lines (or 'PATH_A PATH_B').")],
    scores: Annotated[Optional[Path], typer.Option("--scores", help="Write 'PATH_A PATH_B SCORE' lines here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as one JSON object.")] = False,
    worst: Annotated[int, typer.Option("--worst", min=0, help="Also list the N clips in the largest share of wrong "
                                       "decisions at the EER threshold, and the EER without their trials.")] = 0,
    device: Device = "cpu",
    cache: Cache = None,
    no_cache: NoCache = False,
) -> None:
    """Score a trial list and print EER, ROC AUC, minDCF and accuracy at the stored threshold."""
    from ..evaluate import evaluate as run_eval
    from ..evaluate import hardest_clips, write_scores
    from ..runtime import load_verifier

    v = load_verifier(model, "torch", device=device, cache_dir=cache_arg(cache, no_cache))
    ev = run_eval(v, trials)
    if scores:
        write_scores(scores, ev)
    if worst and ev.metrics is None:
        ev.warnings.append("--worst: the trial list has no labels, so no decision is known to be wrong")
    warn(ev.warnings)
    out: dict[str, Any] = {"trials": len(ev.scores), "clips": ev.n_clips,
                           "clips_per_second": round(ev.n_clips / max(ev.embed_seconds, 1e-9), 1)}
    if ev.metrics is not None:
        out.update(ev.metrics.as_dict())
    hard: list[dict[str, Any]] = []
    if worst and ev.metrics is not None:
        hard, out["eer_without_worst"] = hardest_clips(ev, worst)
        out["worst_clips"] = hard
    out["warnings"] = ev.warnings
    if as_json:
        echo_json(out)
        return
    typer.echo(f"{out['trials']} trials over {out['clips']} clips ({out['clips_per_second']} clips/s)")
    if ev.metrics is None:
        typer.echo("no labelled trials: scores only")
        return
    m = ev.metrics
    typer.echo(f"EER      {m.eer:.4f}\nROC AUC  {m.roc_auc:.4f}\nminDCF   {m.min_dcf:.4f} (P_target 0.01)\n"
               f"accuracy {m.accuracy:.4f} at stored threshold {m.threshold:.4f}")
    if hard:
        typer.echo(f"\nclips in the most wrong decisions at the EER threshold {m.eer_threshold:.4f}:")
        typer.echo(f"{'wrong':>7} {'trials':>6} {'false rejects':>13} {'false accepts':>13}  clip")
        for h in hard:
            typer.echo(f"{h['error_share']:7.1%} {h['trials']:6d} {h['false_rejects']:13d} {h['false_accepts']:13d}  "
                       f"{h['clip']}")
        rest = out["eer_without_worst"]
        typer.echo(f"EER without these clips' trials: {rest:.4f}" if rest is not None else
                   "no trials of both kinds are left without these clips")


@command()
def compare(
    clips: Annotated[list[Path], typer.Argument(help="[MODEL] A B: two clips, after a model directory or a built-in "
                                                     "model's name (soundtwin models); without one, the default "
                                                     "built-in.", show_default=False)],
    as_json: AsJson = False,
    threshold: Threshold = None,
    runtime: Runtime = "auto",
    device: Device = "cpu",
) -> None:
    """Are two clips the same kind of sound? Prints score, threshold and decision."""
    from ..runtime import load_verifier

    if len(clips) == 2:
        from ..pretrained import DEFAULT

        model, (a, b) = Path(DEFAULT), clips
        typer.echo(f"model: built-in '{DEFAULT}' (no model given; see soundtwin models)", err=True)
    elif len(clips) == 3:
        model, a, b = clips
    else:
        raise SoundtwinError(f"compare takes [MODEL] A B: two clips, optionally after a model; got {len(clips)} "
                             f"argument(s)")
    d = load_verifier(model, runtime, device=device).verify(a, b, threshold=threshold)
    warn(d.warnings)
    if as_json:
        echo_json({"model": str(model), "a": str(a), "b": str(b), "score": d.score, "threshold": d.threshold,
                   "same": d.same, "probability": d.probability, "warnings": list(d.warnings)})
        return
    typer.echo(f"score {d.score:.4f}  threshold {d.threshold:.4f}  probability {d.probability:.3f}  "
               f"-> {'same' if d.same else 'different'}")


@command()
def info(
    model: Annotated[Optional[Path], typer.Argument(help="A model directory or a built-in model's name; without "
                                                         "one, the default built-in.", show_default=False)] = None,
    as_json: AsJson = False,
) -> None:
    """The model card: what the model is, and how its threshold and probabilities were set (on which
    held-out part and classes, and the false-accept and false-reject rates expected at the threshold)."""
    from ..pretrained import DEFAULT
    from ..runtime import load_verifier

    card = load_verifier(model or Path(DEFAULT), "auto", cache_dir=False).card()
    if as_json:
        echo_json(card)
        return
    cal = card["calibration"]
    exp = cal.get("expected_at_threshold") or {}
    typer.echo(f"{card['name']}: {card['model']} encoder, {card['distance']} scores, {card['sample_rate']} Hz "
               f"{card['features']} features")
    if card.get("builtin"):
        typer.echo(f"built-in, from {card['source']} (licence {card['licence']})")
    if card.get("classes_trained_on"):
        typer.echo(f"trained on {len(card['classes_trained_on'])} classes")
    if card.get("fine_tuned_from"):
        typer.echo(f"fine-tuned from {card['fine_tuned_from']['model']}")
    typer.echo(f"threshold {card['threshold']:.4f} ({card['threshold_rule']}), set on {cal['on']}"
               + (f": {', '.join(cal['classes'])}" if cal.get("classes") else ""))
    if exp:
        typer.echo(f"expected there: false accepts {exp['far']:.2%}, false rejects {exp['frr']:.2%} "
                   f"({exp['genuine_trials']} genuine, {exp['impostor_trials']} impostor trials)")
    if cal.get("heldout_eer") is not None:
        typer.echo(f"held-out EER {cal['heldout_eer']:.4f}")


@command()
def models(as_json: AsJson = False) -> None:
    """The built-in models: what each is for, its licence and source, and whether it is installed."""
    from ..pretrained import listing

    rows = listing()
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        state = "installed" if r["installed"] else f"not installed: {r['install']}"
        typer.echo(f"{r['name']}{' (default)' if r['default'] else ''}: {r['purpose']}\n"
                   f"    {r['encoder']}\n    licence {r['licence']}; {r['source']}; {state}\n"
                   f"    threshold {r['threshold']} calibrated on {r['calibrated_on']}")


@command()
def embed(
    model: ModelDir,
    inputs: Annotated[list[Path], typer.Argument(help="Clips, folders searched for audio files, or a path,label CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .npz (arrays: embeddings, paths, labels), or a new "
                                                            "folder for Parquet shards (path, label, vector).")],
    runtime: Runtime = "auto",
    device: Device = "cpu",
    engine: Annotated[str, typer.Option(help="For Parquet shards: local (this process) or ray (Ray Data actors, "
                                             "the 'scale' extra).")] = "local",
    workers: Annotated[int, typer.Option(help="Ray actors, one model each.", min=1)] = 2,
    chunk: Annotated[int, typer.Option(help="Clips per shard (a unit of work).", min=1)] = 256,
    threads: Annotated[int, typer.Option(help="Torch threads per process or actor.", min=1)] = 1,
) -> None:
    """Write embeddings of clips to a NumPy .npz file with their paths (and labels, from a CSV), or, for a
    corpus of any size, to Parquet shards in a folder (input: a folder, a CSV or a Parquet manifest), in this
    process or on Ray (--engine ray); ``enroll --embeddings`` and ``index build`` read the shards.

    Unreadable or silent files are skipped with a message and a count, as in training."""
    import io

    import numpy as np

    from ..data import discover, list_audio
    from ..io import atomic_write_bytes
    from ..runtime import load_verifier

    if out.suffix.lower() != ".npz":
        from ..bulk import embed_to_parquet

        if len(inputs) != 1:
            raise SoundtwinError("Parquet shards: give one input (a folder, a .csv or a .parquet manifest)")
        if out.suffix.lower() == ".parquet":
            raise SoundtwinError(f"--out {out}: shards go into a folder (one file per chunk); give a folder name")
        r = embed_to_parquet(str(model), inputs[0], out, engine=engine, workers=workers, chunk=chunk,
                             runtime="torch" if runtime == "auto" else runtime, threads=threads, device=str(device))
        for msg in r["errors"]:
            typer.echo(f"skipped: {msg}", err=True)
        typer.echo(f"wrote {r['written']} embeddings in {r['shards']} shard(s) to {out} ({r['engine']}, "
                   f"{r['seconds']} s" + (f", of which {r['startup_seconds']} s starting Ray)" if r["startup_seconds"]
                                          else ")") + (f"; skipped {r['skipped']} unreadable or silent clip(s)" if r["skipped"] else ""))
        return
    if engine != "local":
        raise SoundtwinError("--engine ray writes Parquet shards: give --out a folder, not a .npz file")
    labels: list[str] = []
    if len(inputs) == 1 and inputs[0].suffix.lower() == ".csv":
        clips = discover(inputs[0])
        paths, labels = [c.path for c in clips], [c.label for c in clips]
    else:
        paths = list_audio(inputs)
    v = load_verifier(model, runtime, device=device)
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


@command()
def calibrate(
    model: ModelDir,
    far: Annotated[Optional[float], typer.Option("--far", help="Target false-accept rate; omit for the EER point.")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Calibrate on these labelled clips instead (a folder of class folders or a path,label CSV): "
                       "your own sounds, ideally of classes the model never trained on.")] = None,
) -> None:
    """Move the model's stored threshold to the EER point or a target false-accept rate of its held-out
    trials, or of trials on your own labelled clips (--data), and refit its probabilities."""
    from ..pretrained import is_builtin
    from ..runtime.modeldir import set_threshold

    if is_builtin(model):
        raise SoundtwinError(f"'{model}' is a built-in model: its shipped calibration is not changed in place. A "
                             f"gallery on it calibrates itself on its enrolled clips; or fine-tune it into a model "
                             f"directory of your own (soundtwin train DATA --from {model}) and calibrate that")
    if data is not None:
        from ..evaluate import calibration_trials
        from ..runtime import load_verifier

        scores, labels, heldout = calibration_trials(load_verifier(model, "auto", cache_dir=False), data)
        meta = set_threshold(model, far, trials=(scores, labels), heldout=heldout)
    else:
        meta = set_threshold(model, far)  # a new version: same weights (and model.onnx), new threshold
    exp = meta.get("expected") or {}
    typer.echo(f"threshold {meta['threshold']:.4f} ({meta['threshold_rule']}) stored in {model}"
               + (f"; on its held-out trials ({meta.get('heldout', 'held-out clips')}): false accepts "
                  f"{exp['far']:.2%}, false rejects {exp['frr']:.2%}" if exp else ""))


@command()
def export(
    model: ModelDir,
    onnx: Annotated[Optional[Path], typer.Option("--onnx", help="Output file (default MODEL_DIR/model.onnx).")] = None,
    check: Annotated[Optional[list[Path]], typer.Option("--check", help="Real clips to compare torch and ONNX on.")] = None,
) -> None:
    """Export the encoder to ONNX (variable time axis), checked against torch (max abs diff <= 1e-4)."""
    from ..errors import require_extra

    require_extra("onnx", "export", "onnx", "onnxruntime")  # before the model is loaded
    from ..runtime import load_verifier
    from ..runtime.export import check_clips, export_onnx
    from ..runtime.modeldir import onnx_path
    from ..runtime.torch_runtime import Verifier

    v = load_verifier(model, "torch")
    if not isinstance(v, Verifier):
        raise SoundtwinError(f"{model}: this built-in model already runs on onnxruntime; nothing to export")
    if v.builtin and onnx is None:
        raise SoundtwinError(f"{model} is a built-in model: give the file to write with --onnx FILE")
    clips = check_clips(v, check or [])
    out = onnx or onnx_path(model)
    worst = export_onnx(v, out, check_clips=clips)
    typer.echo(f"wrote {out}: largest |torch - onnxruntime| = {worst:.2e} over random features and {len(clips)} clip(s)")


@command()
def report(
    model: ModelDir,
    trials: Annotated[Path, typer.Argument(help="Labelled trial list.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for index.html and its PNGs.")],
    labels: Annotated[Optional[Path], typer.Option("--labels", help="path,label CSV of the test clips (default: test.csv beside TRIALS).")] = None,
    device: Device = "cpu",
) -> None:
    """A self-contained HTML report: ROC/DET, score histograms, embedding map, worst errors, training curves."""
    from ..report import build_report
    from ..runtime import load_verifier

    page = build_report(load_verifier(model, "torch", device=device), trials, out, labels_csv=labels)
    typer.echo(f"report written to {page}")

@command("fewshot")
def fewshot_cmd(
    model: ModelDir,
    test_csv: Annotated[Path, typer.Argument(help="Labelled clips (path,label CSV or class folders).")],
    ways: Annotated[int, typer.Option("--ways")] = 5,
    shots: Annotated[int, typer.Option("--shots")] = 1,
    episodes: Annotated[int, typer.Option("--episodes")] = 500,
    queries: Annotated[int, typer.Option("--queries", help="Queries per class per episode.")] = 5,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    scoring: Annotated[str, typer.Option(help="mean, max or topk.")] = "mean",
    as_json: AsJson = False,
    device: Device = "cpu",
) -> None:
    """N-way K-shot accuracy with a 95% confidence interval."""
    from ..fewshot import fewshot
    from ..runtime import load_verifier

    r = fewshot(load_verifier(model, "torch", device=device), test_csv, ways=ways, shots=shots, episodes=episodes, queries=queries,
                seed=seed, scoring=scoring)
    if as_json:
        echo_json(r.as_dict())
        return
    typer.echo(f"{r.ways}-way {r.shots}-shot accuracy {r.accuracy:.4f} +/- {r.ci95:.4f} (95% CI, "
               f"{r.episodes} episodes, {r.queries_per_class} queries/class, {r.scoring} scoring)")
