"""``soundtwin demo``: the main job end to end on synthetic sounds, in about a minute on 2 cores."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import load_config
from .data import trial_pairs
from .data import Trials
from .evaluate import evaluate
from .synth import RECIPES, write_synthetic_dataset
from .training import train

TRAIN_CLASSES = ["whistle", "hum", "chirp_down", "knock", "hiss", "beep"]
UNSEEN_CLASSES = ["buzz", "chirp_up"]


def _trials(paths: list[Path], labels: list[str], n: int, seed: int) -> Trials:
    """A balanced random trial list over labelled clips (``data.trial_pairs``)."""
    i, j, y = trial_pairs(np.array(labels), n, np.random.default_rng(seed))
    return Trials(y.astype(np.int64), [str(paths[k]) for k in i], [str(paths[k]) for k in j])


def run_demo(workdir: str | Path | None = None, *, epochs: int = 6, echo: Callable[[str], None] = print) -> dict:
    """Generate data, train the default preset, evaluate on seen and unseen classes, compare two clips."""
    t0 = time.perf_counter()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="soundtwin-demo-"))
    echo(f"[1/4] writing synthetic clips to {root} ({len(RECIPES)} kinds of sound: {', '.join(RECIPES)})")
    write_synthetic_dataset(root / "train", TRAIN_CLASSES, 30, seed=1)
    test = write_synthetic_dataset(root / "test", TRAIN_CLASSES + UNSEEN_CLASSES, 12, seed=2)
    cfg = load_config("default", overrides=[f"train.epochs={epochs}", "train.crop_max_s=2.0"])
    echo(f"[2/4] training the default preset on {len(TRAIN_CLASSES)} classes x 30 clips ({epochs} epochs)")
    res = train(root / "train", root / "model", cfg, cache_dir=root / "cache", overwrite=True,  # the demo's own model
                on_epoch=lambda e: echo(f"      epoch {e.epoch}/{e.epochs}  loss {e.loss:.3f}  "
                                        f"held-out EER {e.heldout_eer:.3f}  {e.seconds:.1f}s"))
    v = res.verifier
    echo(f"      model saved in {root / 'model'} (threshold {v.threshold:.3f})")
    echo("[3/4] evaluating on new clips")
    out = {}
    for name, classes in (("seen classes", TRAIN_CLASSES), ("unseen classes", UNSEEN_CLASSES + TRAIN_CLASSES[:2])):
        sel = [(p, c) for p, c in test if c in classes]
        ev = evaluate(v, _trials([p for p, _ in sel], [c for _, c in sel], 400, seed=3))
        m = ev.metrics
        assert m is not None
        out[name] = m
        echo(f"      {name:15s} EER {m.eer:.3f}  ROC AUC {m.roc_auc:.3f}  accuracy {m.accuracy:.3f} at the stored threshold")
    (a, _), (b, _), (c, _) = test[0], test[1], test[12]
    echo("[4/4] comparing clips")
    for x, y in ((a, b), (a, c)):
        d = v.verify(x, y)
        echo(f"      {x.name} vs {y.name}: score {d.score:.3f}, probability {d.probability:.2f} -> "
             f"{'same' if d.same else 'different'}")
    echo(f"done in {time.perf_counter() - t0:.0f}s. Try: soundtwin compare {root / 'model'} {a} {c}")
    return out
