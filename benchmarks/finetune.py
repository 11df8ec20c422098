"""Fine-tuning a built-in model on a protocol's training split (``train --from``), evaluated on its trials,
beside the built-in with no training.

    python benchmarks/finetune.py --protocols fsdd-speakers,heldout-speakers --source voice --set train.lr=2e-4
    python benchmarks/finetune.py --protocols catsdogs --source sound --set train.lr=2e-3 --seeds 0,1,2 --dev

``--dev`` adds a check the test trials never see (a setting that wins on them alone is not one to keep): each
seed also fine-tunes on half of the train split (stratified by label, the halves drawn by the seed) and scores
every pair of the other half (``dev_eer``).

``--ensemble`` averages the scores of the seeds' fine-tunes instead (``finetune_ensemble_results.json``), and
scores their weights' average as well (a uniform "model soup", Wortsman et al., 2022: one network's cost):

    python benchmarks/finetune.py --protocols catsdogs --source sound --seeds 0,1,2,3 --dev --ensemble --threads 1 \
        --set train.lr=2e-3 --set train.val_fraction=0.05
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import protocol_dir, update_rows  # noqa: E402

import numpy as np  # noqa: E402

from soundtwin.data import discover, read_trials  # noqa: E402
from soundtwin.evaluate import evaluate  # noqa: E402
from soundtwin.metrics import eer  # noqa: E402
from soundtwin.runtime import load_verifier  # noqa: E402
from soundtwin.runtime.torch_runtime import Verifier  # noqa: E402
from soundtwin.training import finetune_config, train  # noqa: E402

ENSEMBLE_RESULTS = HERE / "finetune_ensemble_results.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="fsdd-speakers,heldout-speakers")
    ap.add_argument("--source", default="voice")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--results", type=Path, default=HERE / "finetune_results.json")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of each training (train.num_threads)")
    ap.add_argument("--dev", action="store_true",
                    help="also fine-tune on half of the train split and report the EER of every pair of the other half")
    ap.add_argument("--ensemble", action="store_true",
                    help="score averaging over the seeds' fine-tunes (results: finetune_ensemble_results.json)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="with --ensemble: keep the members' models in this folder (test-sN, dev-sN); members "
                         "already there are loaded, not trained again")
    args = ap.parse_args()
    if args.keep is not None and not args.ensemble:
        ap.error("--keep keeps an --ensemble run's members; add --ensemble")
    if args.ensemble:
        for protocol in args.protocols.split(","):
            row = ensemble(protocol, args)
            key = (protocol, args.source, row["seeds"], args.overrides, args.dev)
            update_rows(ENSEMBLE_RESULTS, lambda rows, key=key, row=row: [
                r for r in rows if (r["protocol"], r["source"], r["seeds"], r["overrides"], "dev" in r) != key] + [row])
            print(json.dumps(row))
        return 0
    for protocol in args.protocols.split(","):
        pdir = protocol_dir(protocol)
        trials = read_trials(pdir / "trials.txt")
        zero = evaluate(load_verifier(args.source, "torch", cache_dir=False), trials).metrics
        for seed in map(int, args.seeds.split(",")):
            with tempfile.TemporaryDirectory() as work:
                cfg, res, seconds = fine_tune(pdir, args, seed, Path(work) / "m", Path(work) / "c")
                m = evaluate(res.verifier, trials).metrics
                # (its clips' features are in this run's cache: the dev run reads them, not the audio)
                dev = dev_eer(pdir / "train.csv", cfg, args.source, seed, Path(work) / "c") if args.dev else None
            row = {"protocol": protocol, "source": args.source, "trains": cfg.model.name, "seed": seed,
                   "overrides": args.overrides,
                   "zero_shot_eer": round(zero.eer, 4), "fine_tuned_eer": round(m.eer, 4),
                   "fine_tuned_accuracy": round(m.accuracy, 4), "heldout_eer": round(res.history[-1].heldout_eer, 4),
                   "train_seconds": round(seconds, 1), "threads": args.threads, "when": time.strftime("%Y-%m-%d %H:%M")}
            if dev is not None:
                row["dev_eer"] = dev
            key = (protocol, args.source, seed, args.overrides)
            update_rows(args.results, lambda rows, key=key, row=row: [
                r for r in rows if (r["protocol"], r["source"], r["seed"], r["overrides"]) != key] + [row])
            print(json.dumps(row))
    return 0


def fine_tune(pdir: Path, args: argparse.Namespace, seed: int, out: Path, cache: Path):  # type: ignore[no-untyped-def]
    """One seed's fine-tune of ``args.source`` on the protocol's train split: ``(config, result, seconds)``."""
    cfg = finetune_config(args.source, [*args.overrides, f"train.seed={seed}", f"train.num_threads={args.threads}"])
    t0 = time.perf_counter()
    res = train(pdir / "train.csv", out, cfg, cache_dir=cache, init_from=args.source)
    return cfg, res, time.perf_counter() - t0


def halves(train_csv: Path, seed: int) -> tuple[list, list]:
    """The train split's clips in two halves, each label split in two at random (``seed``)."""
    clips = discover(train_csv)
    rng = np.random.default_rng(seed)
    a, b = [], []
    for label in sorted({c.label for c in clips}):
        mine = [c for c in clips if c.label == label]
        order = rng.permutation(len(mine))
        a += [mine[k] for k in order[: len(mine) // 2]]
        b += [mine[k] for k in order[len(mine) // 2:]]
    return a, b


def dev_eer(train_csv: Path, cfg, source: str, seed: int, cache: Path) -> float:  # type: ignore[no-untyped-def]
    """Fine-tune on one half of ``train_csv`` (:func:`halves`), then the EER of every pair of the other half
    (features from ``cache``, the feature cache of the run on the whole split)."""
    scores, labels = dev_scores(train_csv, cfg, source, seed, cache)
    return round(eer(scores, labels)[0], 4)


def dev_scores(train_csv: Path, cfg, source: str, halves_seed: int, cache: Path,  # type: ignore[no-untyped-def]
               keep: bool = False, out: Path | None = None):
    """:func:`dev_eer`'s scores and labels (1: same label), the halves drawn by ``halves_seed``; with ``keep``, the
    fine-tuned verifier as well (its model written to ``out`` when given)."""
    fit, held = halves(train_csv, halves_seed)
    with tempfile.TemporaryDirectory() as work:
        csv_path = Path(work) / "half.csv"
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "label"])
            w.writerows([str(Path(c.path).resolve()), c.label] for c in fit)
        res = train(csv_path, out or Path(work) / "m", cfg, cache_dir=cache, init_from=source)
        scores, labels = pair_scores(res.verifier, held)
    return (scores, labels, res.verifier) if keep else (scores, labels)


def pair_scores(verifier, clips: list) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """The scores of every pair of ``clips`` and whether each pair shares a label (1)."""
    e = verifier.embed([c.path for c in clips])
    labels = np.array([c.label for c in clips])
    i, j = np.triu_indices(len(clips), 1)
    return np.asarray(verifier.score_embeddings(e[i], e[j]), dtype=np.float64), (labels[i] == labels[j]).astype(int)


def ensemble(protocol: str, args: argparse.Namespace) -> dict:
    """Score averaging over fine-tunes that differ only by seed: each seed fine-tunes on the whole train split
    (scored on the test trials) and, with ``--dev``, on the halves drawn by the first seed (every pair of the other
    half), so the members of both ensembles saw the same clips. EER of each member and of the mean score of the
    first 1, 2, ... members; ``souped``: the EER of the members' averaged weights (the first 1, 2, ... of them)."""
    pdir = protocol_dir(protocol)
    trials = read_trials(pdir / "trials.txt")
    seeds = [int(s) for s in args.seeds.split(",")]
    test, dev, dev_labels, seconds = [], [], None, 0.0
    test_nets, dev_nets, reused = [], [], 0
    kept = args.keep
    fit, held = halves(pdir / "train.csv", seeds[0])
    with tempfile.TemporaryDirectory() as work:
        for seed in seeds:
            want = finetune_config(args.source, [*args.overrides, f"train.seed={seed}",
                                                 f"train.num_threads={args.threads}"])
            if kept is not None and _complete(kept / f"test-s{seed}", want):
                res_v = Verifier.load(kept / f"test-s{seed}", cache_dir=False)
                reused += 1
            else:
                out = kept / f"test-s{seed}" if kept is not None else Path(work) / f"m{seed}"
                _, res, took = fine_tune(pdir, args, seed, out, Path(work) / "c")
                seconds += took
                res_v = res.verifier
            test.append(np.asarray(evaluate(res_v, trials).scores, dtype=np.float64))
            test_nets.append(res_v)
            if args.dev:
                if kept is not None and _complete(kept / f"dev-s{seed}", want):
                    v = Verifier.load(kept / f"dev-s{seed}", cache_dir=False)
                    sc, dev_labels = pair_scores(v, held)
                    reused += 1
                else:
                    sc, dev_labels, v = dev_scores(pdir / "train.csv", want, args.source, seeds[0], Path(work) / "c",
                                                   keep=True, out=kept / f"dev-s{seed}" if kept is not None else None)
                dev.append(sc)
                dev_nets.append(v)
            print(f"seed {seed}: test EER {eer(test[-1], trials.labels)[0]:.4f}", flush=True)
        ks = range(2, len(seeds) + 1)
        souped_test = [np.asarray(evaluate(soup(test_nets[:k]), trials).scores, dtype=np.float64) for k in ks]
        every = discover(pdir / "train.csv")
        feats = test_nets[0].features_of([c.path for c in every])
        repaired_test = [np.asarray(evaluate(soup(test_nets[:k], feats), trials).scores, dtype=np.float64)
                         for k in ks]
        if args.dev:
            souped_dev = [pair_scores(soup(dev_nets[:k]), held)[0] for k in ks]
            mine = {c.path for c in fit}
            fit_feats = [feats[k] for k, c in enumerate(every) if c.path in mine]
            repaired_dev = [pair_scores(soup(dev_nets[:k], fit_feats), held)[0] for k in ks]

    def rates(scores: list[np.ndarray], souped: list[np.ndarray], repaired: list[np.ndarray],
              labels: np.ndarray) -> dict:
        return {"members": [round(eer(s, labels)[0], 4) for s in scores],
                "averaged": [round(eer(np.mean(scores[:k], axis=0), labels)[0], 4) for k in range(1, len(scores) + 1)],
                "souped": [round(eer(s, labels)[0], 4) for s in scores[:1] + souped],
                "souped_bn_refit": [round(eer(s, labels)[0], 4) for s in repaired]}

    row = {"protocol": protocol, "source": args.source, "seeds": seeds, "overrides": args.overrides,
           "test": rates(test, souped_test, repaired_test, trials.labels), "train_seconds": round(seconds, 1),
           "threads": args.threads, "when": time.strftime("%Y-%m-%d %H:%M")}
    if reused:  # (their training is not in train_seconds)
        row["members_reused"] = reused
    if args.dev:
        row["dev"] = rates(dev, souped_dev, repaired_dev, dev_labels)
        row["dev_halves_seed"] = seeds[0]
    return row


def _complete(model_dir: Path, cfg=None) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``model_dir`` holds a finished training (a member kept by an earlier run); with ``cfg``, one trained
    with that config (another one there stops the run, naming the folder, rather than being scored as this one)."""
    from soundtwin.errors import ModelError
    from soundtwin.runtime.modeldir import read_config, read_meta

    try:
        done = model_dir.is_dir() and bool(read_meta(model_dir).get("complete"))
    except ModelError:
        return False
    if done and cfg is not None and read_config(model_dir) != cfg:
        sys.exit(f"{model_dir}: kept from a run with other settings; give another --keep folder")
    return done


def soup(members: list, refit: list[np.ndarray] | None = None, frames: int = 200, seed: int = 0,  # type: ignore[no-untyped-def]
         shares: list[float] | None = None):
    """A verifier whose encoder holds the mean of the members' weights (floating-point tensors: parameters and
    running statistics; integer counters from the first member), or their sum weighted by ``shares``; no cache, so
    nothing the members embedded is reused. With ``refit`` (feature matrices of the clips the members trained on),
    the batch-norm statistics are measured afresh (:func:`remeasure_norms`) instead of averaged, as in the "REPAIR"
    of merged networks (Jordan et al., 2023)."""
    import copy

    import torch

    states = [m.encoder.state_dict() for m in members]

    def merged(k: str) -> torch.Tensor:
        if shares is None:
            return torch.stack([s[k] for s in states]).mean(0)
        return sum(w * s[k] for w, s in zip(shares, states, strict=True))

    net = copy.deepcopy(members[0].encoder)
    net.load_state_dict({k: merged(k) if v.is_floating_point() else v for k, v in states[0].items()})
    if refit is not None:
        remeasure_norms(net, refit, frames, seed)
    return Verifier(net, members[0].cfg, threshold=members[0].threshold, cache_dir=False)


def remeasure_norms(net, feats: list[np.ndarray], frames: int = 200, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Measure ``net``'s batch-norm running statistics afresh on ``feats``: two passes of random ``frames``-long
    crops (a shorter clip repeated), batches of 32; ``net`` is left in eval mode."""
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean over every batch
    rng = np.random.default_rng(seed)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            crops = []
            for f in feats:
                f = np.tile(f, (1, -(-frames // f.shape[-1]))) if f.shape[-1] < frames else f
                t = int(rng.integers(0, f.shape[-1] - frames + 1))
                crops.append(f[:, t:t + frames])
            order = rng.permutation(len(crops))
            for b in range(0, len(order) - 1, 32):  # (a batch of one has no spread to measure)
                x = np.stack([crops[k] for k in order[b:b + 32]]).astype(np.float32)
                net(torch.from_numpy(x), torch.full((len(x),), frames, dtype=torch.int64))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.eval()


if __name__ == "__main__":
    sys.exit(main())
