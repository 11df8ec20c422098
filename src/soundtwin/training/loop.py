"""The training loop: features once, a held-out part for validation and calibration, a checkpoint every epoch.

The model directory is rewritten atomically after every epoch (and on Ctrl-C), so it always holds a
complete, usable, calibrated model. ``resume=True`` continues from the saved state. Every model,
tensor and batch lives on one device (``device``: ``cpu``, the default, ``cuda`` or ``auto``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..config import ExperimentConfig, changed_keys
from ..data import trial_pairs, validation_split
from ..device import resolve_device
from ..distance import get_distance
from ..encoders import ENCODERS, build_encoder
from ..errors import DatasetError, ModelError
from ..evaluate import chance_warning
from ..extractor import FeatureExtractor
from ..metrics import eer as compute_eer
from ..runtime.modeldir import CALIBRATION, TRAIN_CLIPS, TRAIN_STATE, calibration_npz, read_config, read_meta
from ..runtime.torch_runtime import Verifier, embed_with
from ..store import LOCK, StoreError, check_writable, locked
from .augment import augment_batch
from .batches import balanced, bucketed, crop, epoch_pairs, to_tensors
from .checkpoint import load_state, read_state, state_bytes
from .dataset import LabelledFeatures, load_labelled
from .distributed import fit as dist_fit
from .distributed import gather as dist_gather
from .distributed import init as dist_init
from .distributed import total as dist_total
from .distributed import world as dist_world
from .losses import build_loss
from .optim import build_optimizer, build_scheduler, param_groups

log = logging.getLogger(__name__)

MAX_HELDOUT_TRIALS = 20000


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


class Trainer:
    """One training run's encoder, objective, optimiser and schedule, on one device."""

    def __init__(self, cfg: ExperimentConfig, data: LabelledFeatures, train_idx: np.ndarray, held_idx: np.ndarray,
                 *, device: Any = "cpu", distributed: bool = False):
        self.cfg, self.data = cfg, data
        self.train_idx, self.held_idx = train_idx, held_idx
        self.device = resolve_device(device)
        # several processes (torchrun): this rank's shard of the training clips is train_idx (see .distributed)
        self.rank, self.world = dist_world() if distributed else (0, 1)
        if self.world > 1 and (cfg.loss.uses_pairs or cfg.model.ensemble > 1):
            raise ModelError(f"training on several processes takes a class loss and one encoder (loss.name="
                             f"{cfg.loss.name}, model.ensemble={cfg.model.ensemble}); run it in one process")
        torch.manual_seed(cfg.train.seed)
        self.encoder = build_encoder(cfg)
        if hasattr(self.encoder, "memo"):  # a frozen trunk that keeps its outputs while training
            self.encoder.memo = {}
        k = cfg.model.ensemble
        # one objective per ensemble member (a margin softmax holds class centres in its member's space)
        self.loss = build_loss(cfg, data.classes) if k == 1 else \
            torch.nn.ModuleList([build_loss(cfg, data.classes) for _ in range(k)])
        self.encoder.to(self.device)
        self.loss.to(self.device)
        self.params = list(self.encoder.parameters()) + list(self.loss.parameters())
        self.members = k if k > 1 else 0
        # gradients are clipped per member, so one member's large step does not shrink another's
        self.clip_groups = [self.params] if k == 1 else \
            [list(e.parameters()) + list(f.parameters()) for e, f in zip(self.encoder.members, self.loss, strict=True)]
        self.opt = build_optimizer(cfg, param_groups(cfg, self.encoder, self.loss))
        self.fps = cfg.features.frames_per_second
        self.lengths = np.array([x.shape[-1] for x in data.feats])
        # An epoch sees all training audio about once: a long clip contributes several crops.
        mean_crop = 0.5 * (cfg.train.crop_min_s + cfg.train.crop_max_s) * self.fps
        if cfg.loss.uses_pairs:
            reps = np.full(len(train_idx), cfg.train.pairs_per_clip)
        else:
            reps = np.array([max(1, int(round(self.lengths[i] / mean_crop))) for i in train_idx])
        self.epoch_pool = np.repeat(train_idx, reps)
        # (the whole run's pool and class counts, summed over ranks: steps do not depend on the process count)
        pool_size = len(self.epoch_pool) if self.world == 1 else dist_total(len(self.epoch_pool))
        self.steps_per_epoch = max(1, math.ceil(pool_size / cfg.train.batch_size))
        # classes of one clip: each batch holds every clip twice (two random crops: two views of one sound),
        # so a class loss has a positive for every anchor
        counts = np.bincount(data.labels[train_idx], minlength=len(data.classes))
        if self.world > 1:
            counts = dist_total(counts)
        self.views = bool(not cfg.loss.uses_pairs and counts[counts > 0].min() < 2)
        if self.views:
            self.steps_per_epoch = max(1, math.ceil(2 * pool_size / cfg.train.batch_size))
        self.ddp: torch.nn.Module | None = None
        if self.world > 1:  # gradients averaged over ranks; the loss sees every rank's batch (dist_gather)
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.encoder, device_ids=[self.device.index or 0] if self.device.type == "cuda" else None)
        self.global_step = 0
        self.sched = build_scheduler(cfg, self.opt, self.total_steps)
        self.last_lr = self.opt.param_groups[0]["lr"]
        # weight averaging: the average starts as a copy of the weights after the first step (n_averaged 0)
        self.ema: AveragedModel | None = None
        if cfg.train.ema_epochs > 0:
            decay = 1.0 - 1.0 / max(1.0, cfg.train.ema_epochs * self.steps_per_epoch)
            self.ema = AveragedModel(self.encoder, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.train.epochs

    def to_device(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.to(self.device, non_blocking=True), lengths.to(self.device, non_blocking=True)

    def _batch(self, idx: np.ndarray, rng: np.random.Generator, fixed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch on the device: whole clips (fixed-size input), or random crops, augmented if asked."""
        if fixed:
            return self.to_device(*to_tensors([self.data.feats[i] for i in idx]))
        t = self.cfg.train
        n = max(4, int(round(rng.uniform(t.crop_min_s, t.crop_max_s) * self.fps)))
        # views: two independent crops, not the loudest twice; "loudest" is defined on log-mel-like features only
        cands = 1 if self.views or self.cfg.features.kind == "speech_embedding" else t.crop_candidates
        x, lengths = to_tensors([crop(self.data.feats[i], n, rng, cands) for i in idx])
        if self.cfg.augment.enabled and self.cfg.features.kind == "logmel":
            x, lengths = augment_batch(x, lengths, self.cfg.augment, rng, frame_s=1.0 / self.fps)
        return self.to_device(x, lengths)

    def _labels(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.data.labels[idx]).to(self.device)

    def _class_batches(self, rng: np.random.Generator) -> list[np.ndarray]:
        t = self.cfg.train
        bs = max(2, t.batch_size // self.world)  # this rank's share of the global batch
        if self.views:
            out = [np.repeat(b, 2) for b in bucketed(self.epoch_pool, self.lengths, max(2, bs // 2), rng)]
        elif t.sampler == "balanced":
            out = balanced(self.epoch_pool, self.data.labels, bs, t.per_class, rng)
        else:
            out = bucketed(self.epoch_pool, self.lengths, bs, rng)
        return out if self.world == 1 else dist_fit(out, self.steps_per_epoch, rng)

    def run_epoch(self, epoch: int, on_step: Callable[[int], None] | None) -> float:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.train.seed, epoch] if self.world == 1 else [cfg.train.seed, epoch, self.rank])
        torch.manual_seed(cfg.train.seed * 1000 + epoch)
        self.encoder.train()
        fixed = ENCODERS[cfg.model.name].fixed_input
        bs = cfg.train.batch_size
        if cfg.loss.uses_pairs:
            ii, jj, yy = epoch_pairs(self.data.labels[self.train_idx], len(self.epoch_pool), rng,
                                     fixed_seed=cfg.train.seed if cfg.train.fixed_pairs else None)
            batches = [(self.train_idx[ii[k:k + bs]], self.train_idx[jj[k:k + bs]], yy[k:k + bs])
                       for k in range(0, len(ii), bs)]
        elif self.members:
            # each member draws its own batches and crops, as separately seeded runs would:
            # members fed the same batches end up too alike to gain from averaging
            rngs = [rng] + [np.random.default_rng([cfg.train.seed, epoch, k]) for k in range(1, self.members)]
            per_member = [self._class_batches(r) for r in rngs]
            batches = [(tuple(pm[t] for pm in per_member), None, None) for t in range(min(map(len, per_member)))]
        else:
            batches = [(b, None, None) for b in self._class_batches(rng)]
        losses = []
        for a, b, y in batches:
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
                loss = self.loss(ea, eb, torch.from_numpy(y).to(self.device))
            elif self.members:
                if min(map(len, a)) < 2:
                    continue
                parts = []
                for k, (idx, enc, f) in enumerate(zip(a, self.encoder.members, self.loss, strict=True)):
                    x, lengths = self._batch(idx, rngs[k], fixed)
                    parts.append(f(enc(x, lengths), self._labels(idx)))
                loss = sum(parts) / len(parts)
            elif self.ddp is not None:  # (every rank takes every step: dist_fit made the batches)
                x, lengths = self._batch(a, rng, fixed)
                loss = self.loss(*dist_gather(self.ddp(x, lengths), self._labels(a)))
            else:
                if len(a) < 2:
                    continue
                x, lengths = self._batch(a, rng, fixed)
                loss = self.loss(self.encoder(x, lengths), self._labels(a))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if not _finite_grads(self.params):  # stop before the step would make every weight NaN
                raise Diverged(epoch + 1, len(losses) + 1)
            if cfg.train.grad_clip:
                for group in self.clip_groups:
                    torch.nn.utils.clip_grad_norm_(group, cfg.train.grad_clip)
            self.last_lr = self.opt.param_groups[0]["lr"]
            self.opt.step()
            self.sched.step()
            if self.ema is not None:
                self.ema.update_parameters(self.encoder)
            self.global_step += 1
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(1)
        return float(np.mean(losses)) if losses else float("nan")

    def heldout_scores(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Scores and labels of seeded trials among the held-out clips (whole clips, as a user's)."""
        dist = get_distance(self.cfg.model.distance)
        feats = [self.data.feats[i] for i in self.held_idx]
        labels = self.data.labels[self.held_idx]
        rng = np.random.default_rng([seed, 7])
        if np.bincount(labels).max() >= 2:
            emb = embed_with(self.encoder, feats, normalize=dist.normalizes, device=self.device)
            i, j, y = trial_pairs(labels, MAX_HELDOUT_TRIALS, rng)
            return dist.score(emb[i], emb[j]), y
        # held-out classes of one clip each: the two halves of a clip are a genuine trial, halves of two
        # clips an impostor one
        halves = [f[:, : max(1, f.shape[-1] // 2)] for f in feats] + [f[:, f.shape[-1] // 2:] for f in feats]
        emb = embed_with(self.encoder, halves, normalize=dist.normalizes, device=self.device)
        n = len(feats)
        i, j = np.triu_indices(n, k=1)
        pick = rng.choice(len(i), min(len(i), n), replace=False)
        scores = np.concatenate([dist.score(emb[:n], emb[n:]), dist.score(emb[i[pick]], emb[n + j[pick]])])
        return scores, np.concatenate([np.ones(n), np.zeros(len(pick))]).astype(np.float32)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """With weight averaging, the encoder holds the averaged weights inside the block (to validate and
        save them) and its own again after it."""
        if not self._has_average:
            yield
            return
        live = {k: v.detach().clone() for k, v in self.encoder.state_dict().items()}
        self.encoder.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            self.encoder.load_state_dict(live)

    def finish(self) -> None:
        """The end of training: the encoder keeps the averaged weights (with weight averaging)."""
        if self._has_average:
            self.encoder.load_state_dict(self.ema.module.state_dict())

    @property
    def _has_average(self) -> bool:
        return self.ema is not None and int(self.ema.n_averaged) > 0

    def state_bytes(self) -> bytes:
        # with weight averaging the model directory holds the average: the state adds the weights trained on
        live = None if self.ema is None else self.encoder.state_dict()
        n = 0 if self.ema is None else int(self.ema.n_averaged)
        return state_bytes(self.loss, self.opt, self.global_step, live=live, n_averaged=n)

    def load_state(self, blob: bytes, meta: dict[str, str]) -> None:
        """Continue from a saved state; the encoder must hold the saved model's weights (with weight averaging,
        the average: it becomes the average again, and the encoder gets the weights trained on)."""
        self.global_step, live, n = load_state(blob, meta, self.loss, self.opt)
        if self.ema is not None and live is not None and n > 0:
            self.ema.module.load_state_dict(self.encoder.state_dict())
            self.ema.n_averaged.fill_(n)
            self.encoder.load_state_dict(live)
        self.sched = build_scheduler(self.cfg, self.opt, self.total_steps, start_step=self.global_step)


def train(
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    cfg: ExperimentConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: Any = "cpu",
    cache_dir: str | os.PathLike[str] | None | bool = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_step: Callable[[int], None] | None = None,
    on_steps_total: Callable[[int], None] | None = None,
    on_clip: Callable[[int], None] | None = None,
    on_clips_total: Callable[[int], None] | None = None,
    init_from: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train a verifier on ``data`` (class folders or a ``path,label`` CSV) into ``out_dir``.

    ``init_from``: fine-tune: start from the weights of a model directory or a built-in model on torch
    (``cfg`` must keep its front end and encoder: see :func:`finetune_config`).

    Callbacks report progress (steps, clips) and each finished epoch; nothing is printed.
    Raises ``KeyboardInterrupt`` after saving a usable model when interrupted.

    ``out_dir`` must be new, empty, or a model directory (see :mod:`soundtwin.store`); a model already
    there is replaced only with ``overwrite=True`` (or continued with ``resume=True``). The directory
    is locked for the whole run: a second training into it fails at once, naming this one's pid.
    ``device``: ``cpu`` (default), ``cuda`` or ``auto`` (the GPU when there is one).
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    dev = resolve_device(device)  # (an unavailable GPU is refused before anything is touched)
    rank, n_proc = dist_world()
    if n_proc > 1:  # under torchrun: join the group; on GPUs, one device per process
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(dev)
        dist_init(dev)
        if rank != 0:  # rank 0 checks, locks and writes the model directory; the others only train
            init = _init_weights(init_from, cfg) if init_from is not None and not resume else None
            return _Run(data, out_dir, cfg, t0, dev, cache_dir, init).go(
                resume, on_epoch=None, on_step=on_step, on_steps_total=on_steps_total, on_clip=on_clip,
                on_clips_total=on_clips_total)
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
    init = _init_weights(init_from, cfg) if init_from is not None and not resume else None
    try:
        with locked(out_dir, timeout=0, purpose="training"):
            run = _Run(data, out_dir, cfg, t0, dev, cache_dir, init)
            return run.go(resume, on_epoch=on_epoch, on_step=on_step, on_steps_total=on_steps_total,
                          on_clip=on_clip, on_clips_total=on_clips_total)
    except StoreError as exc:
        raise ModelError(str(exc)) from None
    finally:
        if state == "new":  # failed before its first save: leave no empty folder behind
            _remove_if_only_lock(out_dir)


def finetune_config(source: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """The config to fine-tune ``source`` (a model directory or a built-in's name): its front end and encoder
    as they are, training settings from ``overrides`` (``train.*``, ``loss.*``, ``augment.*``), after the
    built-in's own fine-tuning defaults (:func:`soundtwin.pretrained.finetune_defaults`)."""
    from ..config import apply_overrides

    from ..pretrained import finetune_defaults, is_builtin

    base = _source_config(source)
    # a teacher's targets are the source's training classes, not the ones fine-tuned on; a projection head
    # was dropped with the source's training: fine-tuning trains the embedding itself
    if base.loss.teacher or base.loss.projection:
        base = replace(base, loss=replace(base.loss, teacher="", projection=0))
    cfg = apply_overrides(base, [*(finetune_defaults(str(source)) if is_builtin(source) else ()), *overrides])
    fixed = [k for k in changed_keys(base, cfg) if k.startswith(_kept(source))]
    if fixed:
        raise ModelError(f"fine-tuning keeps {source}'s front end and encoder; cannot change {', '.join(fixed)}")
    return cfg


def _init_weights(source: str | os.PathLike[str], cfg: ExperimentConfig) -> tuple[str, str, dict[str, Any]]:
    """``(source, its fingerprint, its encoder weights)`` for a fine-tuning run, checked against ``cfg``."""
    from ..runtime import load_verifier

    v = load_verifier(source, "torch", cache_dir=False)
    differ = [k for k in changed_keys(_source_config(source), cfg) if k.startswith(_kept(source))]
    if differ:
        raise ModelError(f"cannot start from {source}: the config changes its {', '.join(differ)}")
    # a frozen pretrained front end (features.kind) gets a new head; a torch encoder keeps its weights
    state = {} if not isinstance(v, Verifier) else \
        {k: t.detach().cpu().clone() for k, t in v.encoder.state_dict().items()}
    head = ENCODERS[cfg.model.name].head
    if v.centre is not None and head is not None:  # a head on a built-in that centres its output starts as
        state[f"{head}.weight"] = torch.eye(len(v.centre))  # that built-in scores: x - centre
        state[f"{head}.bias"] = -torch.from_numpy(np.asarray(v.centre, dtype=np.float32))
    return str(source), v.fingerprint, state



def _kept(source: str | os.PathLike[str]) -> tuple[str, ...]:
    """Config sections fine-tuning keeps: the front end, and the encoder unless a new head is trained."""
    from ..pretrained import head_config, is_builtin

    return ("features.",) if is_builtin(source) and head_config(str(source)) is not None else ("features.", "model.")


def _source_config(source: str | os.PathLike[str]) -> ExperimentConfig:
    """What fine-tuning ``source`` trains: its own front end and encoder, or, for a built-in that runs on
    onnxruntime (``speech``), a new head on its frozen vectors."""
    from ..pretrained import head_config, is_builtin
    from ..runtime import load_verifier

    head = head_config(str(source)) if is_builtin(source) else None
    return head if head is not None else load_verifier(source, "torch", cache_dir=False).cfg


def _remove_if_only_lock(d: Path) -> None:
    try:
        if [e.name for e in d.iterdir()] == [LOCK]:
            (d / LOCK).unlink()
            d.rmdir()
    except OSError:
        pass


def _is_complete(out_dir: Path) -> bool:
    try:
        return bool(read_meta(out_dir).get("complete"))
    except ModelError:
        return False


def _split(cfg: ExperimentConfig, data: str | os.PathLike[str], labels: np.ndarray,
           groups: list[str | None] | None) -> tuple[np.ndarray, np.ndarray, str]:
    """The part held out to validate and calibrate on (:func:`soundtwin.data.validation_split`), errors naming
    the data."""
    try:
        return validation_split(labels, cfg.train.val_fraction, cfg.train.seed, groups, cfg.train.calibrate_on)
    except DatasetError as exc:
        raise DatasetError(f"{data}: {exc}") from None


#: meta.json's ``heldout``: what the part that set the threshold and the probabilities held out.
HELDOUT_HOW = {"clips": "held-out clips of the training classes",
               "classes": "whole classes held out from training",
               "groups": "whole groups (the manifest's group column) held out from training"}


class _Run:
    """One call of :func:`train`, under the model directory's lock."""

    def __init__(self, data: str | os.PathLike[str], out_dir: Path, cfg: ExperimentConfig, t0: float,
                 device: torch.device, cache_dir: str | os.PathLike[str] | None | bool,
                 init: tuple[str, str, dict[str, Any]] | None = None) -> None:
        self.data, self.out_dir, self.cfg, self.t0, self.device, self.cache_dir = data, out_dir, cfg, t0, device, cache_dir
        self.init = init

    def _load_shard(self, extractor: FeatureExtractor, rank: int, n_proc: int,
                    on_clip: Callable[[int], None] | None, on_clips_total: Callable[[int], None] | None
                    ) -> tuple[LabelledFeatures, np.ndarray, np.ndarray, str, str, bytes, int]:
        """This rank's part of the data: the held-out part is chosen on the whole clip list (before any audio is
        read), then each rank featurises only every ``n_proc``-th training clip, rank 0 the held-out part too."""
        from ..data import discover, encode_labels
        from .dataset import clip_keys, data_fingerprint
        from .distributed import gather_objects

        cfg, data = self.cfg, self.data
        clips = discover(data)
        labels, classes = encode_labels([c.label for c in clips])
        if len(classes) < 2:
            raise DatasetError(f"{data}: training needs at least two classes, found {classes}")
        groups = [c.group for c in clips]
        train_all, held_all, how = _split(cfg, data, labels, groups if any(g is not None for g in groups) else None)
        mine = np.sort(train_all)[rank::n_proc]
        need = np.sort(np.concatenate([mine, held_all])) if rank == 0 else mine
        lf = load_labelled(data, extractor, on_clip, on_clips_total, only=need, classes=classes)
        assert lf.index is not None
        skipped = {p for part in gather_objects([p for p, _ in lf.skipped]) for p in part}
        kept = [k for k in range(len(clips)) if str(clips[k].path) not in skipped]
        train_idx = np.flatnonzero(np.isin(lf.index, mine))
        held_idx = np.flatnonzero(np.isin(lf.index, held_all))
        n_train = len(set(train_all.tolist()) & set(kept))
        return (lf, train_idx, held_idx, how, data_fingerprint([str(clips[k].path) for k in kept],
                [clips[k].label for k in kept]), clip_keys([str(clips[k].path) for k in kept]), n_train)

    def go(self, resume: bool, *, on_epoch: Callable[[EpochStats], None] | None,
           on_step: Callable[[int], None] | None, on_steps_total: Callable[[int], None] | None,
           on_clip: Callable[[int], None] | None, on_clips_total: Callable[[int], None] | None) -> TrainResult:
        cfg, data, out_dir = self.cfg, self.data, self.out_dir
        start_epoch, history = 0, []
        if resume:
            blob, state_meta, saved_meta = read_state(out_dir)
            saved_cfg = read_config(out_dir)
            if saved_cfg != cfg:
                # a resumed run continues with the config it started with; only its length may change
                # (the CLI refuses any other --set with --resume, naming the keys)
                longer = replace(saved_cfg, train=replace(saved_cfg.train, epochs=cfg.train.epochs))
                cfg = longer if changed_keys(saved_cfg, cfg) == ["train.epochs"] else saved_cfg
            start_epoch = int(saved_meta.get("epoch", 0))
            history = [EpochStats(**h) for h in saved_meta.get("history", [])]
        rank, n_proc = dist_world()
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        elif n_proc > 1 and self.device.type == "cpu":  # the cores shared out, not each process taking them all
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_proc))
        extractor = FeatureExtractor(cfg.features, cache_dir=self.cache_dir)
        if n_proc > 1:
            lf, train_idx, held_idx, held_how, data_fp, clip_keys_, n_train = self._load_shard(
                extractor, rank, n_proc, on_clip, on_clips_total)
        else:
            lf = load_labelled(data, extractor, progress=on_clip, on_total=on_clips_total)
            data_fp, clip_keys_ = lf.fingerprint(), lf.clip_keys()
        if resume and saved_meta.get("data_fingerprint") not in (None, data_fp):
            raise DatasetError(f"{data}: not the dataset {out_dir} was trained on ({saved_meta.get('data')}); "
                               f"--resume continues on the same clips (train into a new --out for new data)")
        if n_proc == 1:
            train_idx, held_idx, held_how = _split(cfg, data, lf.labels, lf.groups)
            n_train = len(train_idx)
        tr = Trainer(cfg, lf, train_idx, held_idx, device=self.device, distributed=n_proc > 1)
        if self.init is not None and self.init[2]:  # fine-tuning: the source's weights (a new head's stay new)
            missing, unexpected = tr.encoder.load_state_dict(self.init[2], strict=False)
            new_head = (ENCODERS[cfg.model.name].head or "head") + "."
            if unexpected or any(not k.startswith(new_head) for k in missing):
                raise ModelError(f"{self.init[0]}'s weights do not fit {cfg.model.name} (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]})")
        if resume:
            tr.encoder.load_state_dict(Verifier.load(out_dir, cache_dir=False).encoder.state_dict())
            tr.load_state(blob, state_meta)
        if on_steps_total is not None:
            on_steps_total(tr.steps_per_epoch * max(0, cfg.train.epochs - start_epoch))

        verifier = Verifier(tr.encoder, cfg, cache_dir=self.cache_dir, device=self.device)
        base_meta = {"classes": lf.classes, "n_train_clips": int(n_train),
                     "n_heldout_clips": int(len(held_idx)), "skipped_clips": len(lf.skipped),
                     "epochs": cfg.train.epochs, "data": str(data), "data_fingerprint": data_fp,
                     "heldout": HELDOUT_HOW[held_how],
                     "heldout_classes": sorted({lf.classes[k] for k in lf.labels[held_idx].tolist()}),
                     "views": tr.views}
        if n_proc > 1:
            base_meta["processes"] = n_proc
        if self.init is not None:
            base_meta["fine_tuned_from"] = {"model": self.init[0], "fingerprint": self.init[1]}
        elif resume and "fine_tuned_from" in saved_meta:
            base_meta["fine_tuned_from"] = saved_meta["fine_tuned_from"]

        def save(epoch: int, interrupted: bool, heldout: tuple[np.ndarray, np.ndarray] | None = None,
                 diverged: Diverged | None = None) -> None:
            if rank != 0:  # rank 0 alone validates and writes the model directory
                return
            state = tr.state_bytes()  # (the weights trained on: taken before the average goes in)
            with tr.averaged():
                scores, labels = heldout if heldout is not None else tr.heldout_scores(cfg.train.seed)
                verifier.calibrate(scores, labels)
                verifier.save(out_dir, extra={TRAIN_STATE: state, CALIBRATION: calibration_npz(scores, labels),
                                              TRAIN_CLIPS: clip_keys_},
                              meta_updates={**base_meta, "epoch": epoch, "interrupted": interrupted,
                                            "complete": epoch >= cfg.train.epochs and not interrupted,
                                            "diverged": None if diverged is None else
                                            {"epoch": diverged.epoch, "step": diverged.step},
                                            "history": [asdict(h) for h in history],
                                            "training_seconds": round(time.perf_counter() - self.t0, 2)})

        diverged: Diverged | None = None
        try:
            for epoch in range(start_epoch, cfg.train.epochs):
                te = time.perf_counter()
                loss = tr.run_epoch(epoch, on_step)
                if rank == 0:
                    with tr.averaged():
                        scores, labels = tr.heldout_scores(cfg.train.seed)
                    e, thr = compute_eer(scores, labels)
                else:  # (only rank 0 holds the held-out part)
                    scores, labels, e, thr = np.zeros(0), np.zeros(0), float("nan"), float("nan")
                history.append(EpochStats(epoch + 1, cfg.train.epochs, loss, e, thr, tr.last_lr,
                                          round(time.perf_counter() - te, 2)))
                save(epoch + 1, False, (scores, labels))
                h = history[-1]
                log.info("epoch %d/%d  loss %.4f  held-out EER %.4f  %.1fs", h.epoch, h.epochs, h.loss,
                         h.heldout_eer, h.seconds)  # (notebooks: logging.basicConfig(level="INFO") shows these)
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
        tr.finish()
        if hasattr(tr.encoder, "memo"):
            tr.encoder.memo = None  # the returned verifier computes every clip afresh
        res = TrainResult(out_dir, verifier, history, lf.skipped, time.perf_counter() - self.t0, diverged=diverged)
        w = chance_warning(verifier.meta.get("heldout_eer"))
        if w:
            res.warnings.append(w)
            log.warning(w)
        return res
