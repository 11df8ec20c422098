"""Training: features once, a held-out part for validation and calibration, a checkpoint every epoch.

The model directory is rewritten atomically after every epoch (and on Ctrl-C), so it always
holds a complete, usable, calibrated model. ``resume=True`` continues from the saved state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .augment import augment_batch
from .config import ExperimentConfig, changed_keys, config_from_dict
from .data import discover, encode_labels, sample_pairs, stratified_split, trial_pairs
from .errors import DatasetError, ModelError
from .extract import FeatureExtractor
from .io import read_json
from .losses import build_loss
from .metrics import eer as compute_eer
from .models import build_encoder
from .store import StoreError, check_writable, locked
from .verifier import Verifier, embed_feature_list, pad_batch, score_embeddings

log = logging.getLogger(__name__)

MAX_HELDOUT_TRIALS = 20000


@dataclass
class LabelledFeatures:
    feats: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_labelled(data: str | os.PathLike[str], extractor: FeatureExtractor,
                  progress: Callable[[int], None] | None = None,
                  on_total: Callable[[int], None] | None = None) -> LabelledFeatures:
    """Features and labels of a dataset; bad clips are skipped and listed in ``skipped``."""
    clips = discover(data)
    if on_total is not None:
        on_total(len(clips))
    feats, errors = extractor.from_files([c.path for c in clips], skip_errors=True, progress=progress)
    keep = [k for k, f in enumerate(feats) if f is not None]
    if not keep:
        raise DatasetError(f"{data}: none of the {len(clips)} clips could be read ({errors[0][1]})")
    labels, classes = encode_labels([clips[k].label for k in keep])
    if len(classes) < 2:
        raise DatasetError(f"{data}: training needs at least two classes, found {classes}")
    return LabelledFeatures([feats[k] for k in keep], labels, classes,  # type: ignore[misc]
                            [str(clips[k].path) for k in keep], errors)


def dataset_fingerprint(lf: LabelledFeatures) -> str:
    """What ``--resume`` checks it continues on: the clips (identified as in ``train_clips.txt``, by file
    name and size) and their labels."""
    import hashlib

    from .evaluate import clip_key

    h = hashlib.blake2b(digest_size=12)
    for key, label in sorted((clip_key(p), lf.classes[k]) for p, k in zip(lf.paths, lf.labels.tolist())):
        h.update(f"{key}\0{label}\n".encode())
    return h.hexdigest()


@dataclass
class EpochStats:
    epoch: int
    epochs: int
    loss: float
    heldout_eer: float
    threshold: float
    lr: float
    seconds: float


@dataclass
class TrainResult:
    model_dir: Path
    verifier: Verifier
    history: list[EpochStats]
    skipped: list[tuple[str, str]]
    seconds: float
    interrupted: bool = False
    diverged: Diverged | None = None
    warnings: list[str] = field(default_factory=list)  # training stopped early: a step's gradient was not finite


class Diverged(Exception):
    """A training step's gradient was NaN or infinite (``epoch`` and ``step`` count from 1)."""

    def __init__(self, epoch: int, step: int):
        super().__init__(f"the gradient became non-finite at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


def _finite_grads(params: list[torch.nn.Parameter]) -> bool:
    sums = [p.grad.sum() for p in params if p.grad is not None]  # NaN or inf anywhere makes its sum so
    return not sums or bool(torch.isfinite(torch.stack(sums)).all())


def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate at a global step: constant, cosine decay, or one-cycle (10% warm-up, cosine down)."""
    if schedule == "none" or total <= 1:
        return base
    p = min(step / (total - 1), 1.0)
    if schedule == "cosine":
        return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p)))
    warm = 0.1
    if p < warm:
        return base * (0.04 + 0.96 * p / warm)
    q = (p - warm) / (1 - warm)
    return base * (0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * q)))


class KerasRMSprop(torch.optim.Optimizer):
    """RMSprop exactly as Keras 3 runs it: ``v = rho v + (1 - rho) g^2; w -= lr g / sqrt(v + eps)``
    (torch's own RMSprop adds eps outside the square root, which changes small steps)."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-7):  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[no-untyped-def,override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                v.mul_(group["rho"]).addcmul_(p.grad, p.grad, value=1 - group["rho"])
                p.addcdiv_(p.grad, (v + group["eps"]).sqrt(), value=-group["lr"])


def build_optimizer(cfg: ExperimentConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "rmsprop":  # Keras defaults: rho 0.9, epsilon 1e-7 inside the square root
        return KerasRMSprop(params, lr=t.lr)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def _frames_per_second(cfg: ExperimentConfig) -> float:
    f = cfg.features
    return f.sample_rate / f.decimate / f.hop_length


def crop(feat: np.ndarray, n: int, rng: np.random.Generator, candidates: int = 1) -> np.ndarray:
    """A random ``n``-frame crop of ``feat`` (the whole clip if shorter); with several candidates,
    the one with the most energy (log-mel features: the largest mean of exp)."""
    t = feat.shape[-1]
    if t <= n:
        return feat
    starts = rng.integers(0, t - n + 1, size=candidates)
    if candidates > 1:
        energy = np.exp(feat).mean(0)
        csum = np.concatenate([[0.0], np.cumsum(energy)])
        starts = starts[[int(np.argmax(csum[starts + n] - csum[starts]))]]
    s = int(starts[0])
    return feat[:, s : s + n]


class _Trainer:
    def __init__(self, cfg: ExperimentConfig, data: LabelledFeatures, train_idx: np.ndarray, held_idx: np.ndarray):
        self.cfg, self.data = cfg, data
        self.train_idx, self.held_idx = train_idx, held_idx
        torch.manual_seed(cfg.train.seed)
        self.encoder = build_encoder(cfg)
        k = cfg.model.ensemble
        # one objective per ensemble member (a margin softmax holds class centres in its member's space)
        self.loss = build_loss(cfg, len(data.classes)) if k == 1 else \
            torch.nn.ModuleList([build_loss(cfg, len(data.classes)) for _ in range(k)])
        self.params = list(self.encoder.parameters()) + list(self.loss.parameters())
        self.members = k if k > 1 else 0
        # gradients are clipped per member, so one member's large step does not shrink another's
        self.clip_groups = [self.params] if k == 1 else \
            [list(e.parameters()) + list(f.parameters()) for e, f in zip(self.encoder.members, self.loss, strict=True)]
        self.opt = build_optimizer(cfg, self.params)
        self.fps = _frames_per_second(cfg)
        # An epoch sees all training audio about once: a long clip contributes several crops.
        mean_crop = 0.5 * (cfg.train.crop_min_s + cfg.train.crop_max_s) * self.fps
        if cfg.loss.uses_pairs:
            reps = np.full(len(train_idx), cfg.train.pairs_per_clip)
        else:
            reps = np.array([max(1, int(round(data.feats[i].shape[-1] / mean_crop))) for i in train_idx])
        self.epoch_pool = np.repeat(train_idx, reps)
        self.steps_per_epoch = max(1, math.ceil(len(self.epoch_pool) / cfg.train.batch_size))
        self.global_step = 0

    def _batch(self, idx: np.ndarray, rng: np.random.Generator, fixed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if fixed:
            return pad_batch([self.data.feats[i] for i in idx])
        t = self.cfg.train
        n = max(4, int(round(rng.uniform(t.crop_min_s, t.crop_max_s) * self.fps)))
        x, lengths = pad_batch([crop(self.data.feats[i], n, rng, t.crop_candidates) for i in idx])
        if self.cfg.augment.enabled and self.cfg.features.kind == "logmel":
            x, lengths = augment_batch(x, lengths, self.cfg.augment, rng)
        return x, lengths

    def _bucketed(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Shuffled batches of clips of similar length (less padding), in shuffled order."""
        bs = self.cfg.train.batch_size
        order = rng.permutation(self.epoch_pool)
        lengths = np.array([self.data.feats[i].shape[-1] for i in order])
        batches = []
        for k in range(0, len(order), 8 * bs):
            chunk = order[k:k + 8 * bs]
            chunk = chunk[np.argsort(lengths[k:k + 8 * bs], kind="stable")]
            batches += [chunk[j:j + bs] for j in range(0, len(chunk), bs)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def _balanced(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Label-balanced batches from pytorch-metric-learning's MPerClassSampler: ``m`` clips of each of
        ``batch_size / m`` classes, so every anchor has positives to mine (``m`` grows when classes are few)."""
        from pytorch_metric_learning.samplers import MPerClassSampler

        labels = self.data.labels[self.epoch_pool]
        n_classes = len(np.unique(labels))
        bs = self.cfg.train.batch_size
        m = max(self.cfg.train.per_class, -(-bs // n_classes))
        bs = max(m, (bs // m) * m)
        np.random.seed(int(rng.integers(2**31)))  # the sampler draws from numpy's global generator
        sampler = MPerClassSampler(labels, m, batch_size=bs, length_before_new_iter=len(labels))
        order = self.epoch_pool[np.fromiter(iter(sampler), dtype=np.int64)]
        return [order[k:k + bs] for k in range(0, len(order), bs)]

    def epoch_pairs(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This epoch's training pairs (positions in ``train_idx``) for a pair loss."""
        labels = self.data.labels[self.train_idx]
        if not self.cfg.train.fixed_pairs:
            return sample_pairs(labels, len(self.epoch_pool), rng)
        # The tutorial builds its pair array once and Keras shuffles it every epoch; the draw
        # depends on the seed alone, so a resumed run trains on the same pairs.
        ii, jj, yy = sample_pairs(labels, len(self.epoch_pool), np.random.default_rng([self.cfg.train.seed, 2**20]))
        order = rng.permutation(len(ii))
        return ii[order], jj[order], yy[order]

    def run_epoch(self, epoch: int, on_step: Callable[[int], None] | None) -> float:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.train.seed, epoch])
        torch.manual_seed(cfg.train.seed * 1000 + epoch)
        self.encoder.train()
        fixed = cfg.model.name == "mlp"
        total_steps = self.steps_per_epoch * cfg.train.epochs
        bs = cfg.train.batch_size
        if cfg.loss.uses_pairs:
            ii, jj, yy = self.epoch_pairs(rng)
            batches = [(self.train_idx[ii[k:k + bs]], self.train_idx[jj[k:k + bs]], yy[k:k + bs])
                       for k in range(0, len(ii), bs)]
        else:
            make = self._balanced if cfg.train.sampler == "balanced" else self._bucketed
            if self.members:
                # each member draws its own batches and crops, as separately seeded runs would:
                # members fed the same batches end up too alike to gain from averaging
                rngs = [rng] + [np.random.default_rng([cfg.train.seed, epoch, k]) for k in range(1, self.members)]
                per_member = [make(r) for r in rngs]
                batches = [(tuple(pm[t] for pm in per_member), None, None) for t in range(min(map(len, per_member)))]
            else:
                batches = [(b, None, None) for b in make(rng)]
        losses = []
        for a, b, y in batches:
            for g in self.opt.param_groups:
                g["lr"] = lr_at(self.global_step, total_steps, cfg.train.lr, cfg.train.scheduler)
            if b is not None:
                xa, la = self._batch(a, rng, fixed)
                xb, lb = self._batch(b, rng, fixed)
                if fixed:
                    ea, eb = self.encoder(xa, la), self.encoder(xb, lb)
                else:
                    n = max(xa.shape[-1], xb.shape[-1])
                    xa = torch.nn.functional.pad(xa, (0, n - xa.shape[-1]))
                    xb = torch.nn.functional.pad(xb, (0, n - xb.shape[-1]))
                    e = self.encoder(torch.cat([xa, xb]), torch.cat([la, lb]))
                    ea, eb = e[: len(a)], e[len(a):]
                loss = self.loss(ea, eb, torch.from_numpy(y))
            elif self.members:
                if min(map(len, a)) < 2:
                    continue
                parts = []
                for k, (idx, enc, f) in enumerate(zip(a, self.encoder.members, self.loss, strict=True)):
                    x, lengths = self._batch(idx, rngs[k], fixed)
                    parts.append(f(enc(x, lengths), torch.from_numpy(self.data.labels[idx])))
                loss = sum(parts) / len(parts)
            else:
                if len(a) < 2:
                    continue
                x, lengths = self._batch(a, rng, fixed)
                loss = self.loss(self.encoder(x, lengths), torch.from_numpy(self.data.labels[a]))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if not _finite_grads(self.params):  # stop before the step would make every weight NaN
                raise Diverged(epoch + 1, len(losses) + 1)
            if cfg.train.grad_clip:
                for group in self.clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, cfg.train.grad_clip)
            self.opt.step()
            self.global_step += 1
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(1)
        return float(np.mean(losses)) if losses else float("nan")

    def heldout_scores(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        feats = [self.data.feats[i] for i in self.held_idx]
        emb = embed_feature_list(self.encoder, feats, normalize=self.cfg.model.distance == "cosine")
        rng = np.random.default_rng([seed, 7])
        i, j, y = trial_pairs(self.data.labels[self.held_idx], MAX_HELDOUT_TRIALS, rng)
        return score_embeddings(emb[i], emb[j], self.cfg.model.distance), y

    # -- state for --resume ----------------------------------------------------------------
    def state_bytes(self) -> bytes:
        tensors: dict[str, torch.Tensor] = {}
        for k, v in self.loss.state_dict().items():
            tensors[f"loss.{k}"] = v.detach().contiguous()
        opt = self.opt.state_dict()
        scalars: dict[str, Any] = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    tensors[f"opt.{pid}.{k}"] = v.detach().contiguous()
                else:
                    scalars[f"{pid}.{k}"] = v
        meta = {"param_groups": json.dumps(opt["param_groups"]), "scalars": json.dumps(scalars),
                "global_step": str(self.global_step)}
        return st_save(tensors, metadata=meta)

    def load_state(self, blob: bytes, meta: dict[str, str]) -> None:
        tensors = st_load(blob)
        self.loss.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, pid, name = k.split(".", 2)
                state.setdefault(int(pid), {})[name] = v
        for k, v in json.loads(meta["scalars"]).items():
            pid, name = k.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
        self.opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
        self.global_step = int(meta["global_step"])


def _read_state(model_dir: Path) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    from safetensors import safe_open

    path = model_dir / "train_state.safetensors"
    if not path.is_file():
        raise ModelError(f"{model_dir}: nothing to resume (no train_state.safetensors)")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    return path.read_bytes(), meta, read_json(model_dir / "meta.json")


def train(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    cache_dir: str | os.PathLike[str] | None | bool = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    on_steps_total: Callable[[int], None] | None = None,
    on_clip: Callable[[int], None] | None = None,
    on_clips_total: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train a verifier on ``data`` (class folders or a ``path,label`` CSV) into ``out_dir``.

    Callbacks report progress (steps, clips) and each finished epoch; nothing is printed.
    Raises ``KeyboardInterrupt`` after saving a usable model when interrupted.

    ``out_dir`` must be new, empty, or a model directory (see :mod:`soundtwin.store`); a model already
    there is replaced only with ``overwrite=True`` (or continued with ``resume=True``). The directory
    is locked for the whole run: a second training into it fails at once, naming this one's pid.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    try:
        state = check_writable(out_dir, "model")
    except StoreError as exc:
        raise ModelError(str(exc)) from None
    if resume and state != "existing":
        raise ModelError(f"{out_dir}: nothing to resume (no model there)")
    if not resume and state == "existing" and not overwrite:
        done = "a complete" if _is_complete(out_dir) else "an unfinished"
        raise ModelError(f"{out_dir}: holds {done} model; pass --overwrite to replace it"
                         + ("" if done == "a complete" else " or --resume to continue it"))
    try:
        lock = locked(out_dir, timeout=0, purpose="training")
        lock.__enter__()
    except StoreError as exc:
        raise ModelError(str(exc)) from None
    try:
        return _train_locked(data, out_dir, cfg, t0, resume=resume, cache_dir=cache_dir, on_epoch=on_epoch,
                             on_step=on_step, on_steps_total=on_steps_total, on_clip=on_clip,
                             on_clips_total=on_clips_total)
    finally:
        lock.__exit__(None, None, None)
        if state == "new":  # failed before its first save: leave no empty folder behind
            _remove_if_only_lock(out_dir)


def _remove_if_only_lock(d: Path) -> None:
    from .store import LOCK

    try:
        if [e.name for e in d.iterdir()] == [LOCK]:
            (d / LOCK).unlink()
            d.rmdir()
    except OSError:
        pass


def _is_complete(out_dir: Path) -> bool:
    from .store import version_dir

    try:
        return bool(read_json(version_dir(out_dir) / "meta.json").get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def _train_locked(data: str | os.PathLike[str], out_dir: Path, cfg: ExperimentConfig, t0: float, *, resume: bool,
                  cache_dir: str | os.PathLike[str] | None | bool,
                  on_epoch: Callable[[EpochStats], None] | None, on_step: Callable[[int], None] | None,
                  on_steps_total: Callable[[int], None] | None, on_clip: Callable[[int], None] | None,
                  on_clips_total: Callable[[int], None] | None) -> TrainResult:
    start_epoch, history = 0, []
    if resume:
        blob, state_meta, saved_meta = _read_state(out_dir)
        saved_cfg = config_from_dict(read_json(out_dir / "config.json"))
        if saved_cfg != cfg:
            # a resumed run continues with the config it started with; only its length may change
            # (the CLI refuses any other --set with --resume, naming the keys)
            longer = replace(saved_cfg, train=replace(saved_cfg.train, epochs=cfg.train.epochs))
            cfg = longer if changed_keys(saved_cfg, cfg) == ["train.epochs"] else saved_cfg
        start_epoch = int(saved_meta.get("epoch", 0))
        history = [EpochStats(**h) for h in saved_meta.get("history", [])]
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    extractor = FeatureExtractor(cfg.features, cache_dir=cache_dir)
    lf = load_labelled(data, extractor, progress=on_clip, on_total=on_clips_total)
    data_fp = dataset_fingerprint(lf)
    if resume and saved_meta.get("data_fingerprint") not in (None, data_fp):
        raise DatasetError(f"{data}: not the dataset {out_dir} was trained on ({saved_meta.get('data')}); "
                           f"--resume continues on the same clips (train into a new --out for new data)")
    train_idx, held_idx = stratified_split(lf.labels, cfg.train.val_fraction, cfg.train.seed)
    if len(held_idx) < 3 or len(np.unique(lf.labels[held_idx])) < 2:
        raise DatasetError(f"{data}: too few clips to hold out a validation part "
                           f"({len(lf.feats)} clips in {len(lf.classes)} classes)")
    tr = _Trainer(cfg, lf, train_idx, held_idx)
    if resume:
        tr.encoder.load_state_dict(Verifier.load(out_dir, cache_dir=False).encoder.state_dict())
        tr.load_state(blob, state_meta)
    if on_steps_total is not None:
        on_steps_total(tr.steps_per_epoch * max(0, cfg.train.epochs - start_epoch))

    verifier = Verifier(tr.encoder, cfg, cache_dir=cache_dir)
    from .evaluate import clip_key

    clip_keys = ("\n".join(sorted({clip_key(p) for p in lf.paths})) + "\n").encode()
    base_meta = {"classes": lf.classes, "n_train_clips": int(len(train_idx)), "n_heldout_clips": int(len(held_idx)),
                 "skipped_clips": len(lf.skipped), "epochs": cfg.train.epochs, "data": str(data),
                 "data_fingerprint": data_fp}

    def save(epoch: int, interrupted: bool, heldout: tuple[np.ndarray, np.ndarray] | None = None,
             diverged: Diverged | None = None) -> None:
        scores, labels = heldout if heldout is not None else tr.heldout_scores(cfg.train.seed)
        verifier.calibrate(scores, labels)
        verifier.save(out_dir, extra={"train_state.safetensors": tr.state_bytes(),
                                      "calibration.npz": verifier.calibration_npz(scores, labels),
                                      "train_clips.txt": clip_keys},
                      meta_updates={**base_meta, "epoch": epoch, "interrupted": interrupted,
                                    "complete": epoch >= cfg.train.epochs and not interrupted,
                                    "diverged": None if diverged is None else
                                    {"epoch": diverged.epoch, "step": diverged.step},
                                    "history": [asdict(h) for h in history],
                                    "training_seconds": round(time.perf_counter() - t0, 2)})

    epoch = start_epoch
    diverged: Diverged | None = None
    try:
        for epoch in range(start_epoch, cfg.train.epochs):
            te = time.perf_counter()
            loss = tr.run_epoch(epoch, on_step)
            scores, labels = tr.heldout_scores(cfg.train.seed)
            e, thr = compute_eer(scores, labels)
            history.append(EpochStats(epoch + 1, cfg.train.epochs, loss, e, thr,
                                      tr.opt.param_groups[0]["lr"], round(time.perf_counter() - te, 2)))
            save(epoch + 1, False, (scores, labels))
            h = history[-1]
            log.info("epoch %d/%d  loss %.4f  held-out EER %.4f  %.1fs", h.epoch, h.epochs, h.loss, h.heldout_eer,
                     h.seconds)  # (notebooks: logging.basicConfig(level="INFO") shows these)
            if on_epoch is not None:
                on_epoch(h)
        if start_epoch >= cfg.train.epochs:  # nothing left to run: still leave a calibrated model
            save(cfg.train.epochs, False)
    except Diverged as exc:
        # Keras would apply the NaN step and carry on with a model that scores every pair alike;
        # we keep the weights of the last finite step, calibrated, and say so.
        diverged = exc
        save(len(history), False, diverged=exc)
    except KeyboardInterrupt:
        if tr.global_step > 0:
            save(len(history), True)
        raise
    res = TrainResult(out_dir, verifier, history, lf.skipped, time.perf_counter() - t0, diverged=diverged)
    from .evaluate import chance_warning

    w = chance_warning(verifier.meta.get("heldout_eer"))
    if w:
        res.warnings.append(w)
        log.warning(w)
    return res
