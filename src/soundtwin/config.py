"""Configuration as data: frozen dataclasses, one per component, nested in one experiment config.

Files (YAML, JSON or TOML) and ``key=value`` overrides map onto them; unknown keys, wrong types and
out-of-range values raise :class:`ConfigError` naming the key.

>>> cfg = load_config(preset="tutorial", overrides=["train.epochs=2"])
>>> cfg.train.epochs, cfg.model.name
(2, 'mlp')
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from .distance import DISTANCES
from .encoders import ENCODERS
from .errors import ConfigError
from .training.losses import LOSSES


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(options)}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class FeatureConfig:
    """Front end. ``kind``: ``logmel`` (log mel energies), ``mfcc``, ``speech_embedding`` (the frozen
    ``speech`` built-in's 96-d vectors every 80 ms: a pretrained front end), or ``tutorial`` (the tutorial's
    librosa MFCC at 22,050 Hz after ``[::decimate]``, padded or cut to ``max_frames``)."""

    kind: str = "logmel"
    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    n_mfcc: int = 20
    fmin: float = 20.0
    fmax: float = 0.0  # 0 means sample_rate / 2
    max_frames: int = 0  # 0: variable length; > 0: zero-pad or cut to exactly this many frames
    decimate: int = 1

    def __post_init__(self) -> None:
        _choice("features.kind", self.kind, ("logmel", "mfcc", "speech_embedding", "tutorial"))
        for k in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "n_mfcc", "decimate"):
            _positive(f"features.{k}", getattr(self, k))
        _positive("features.max_frames", self.max_frames, allow_zero=True)
        if self.win_length > self.n_fft:
            raise ConfigError("features.win_length must not exceed features.n_fft")

    @property
    def n_features(self) -> int:
        return {"logmel": self.n_mels, "speech_embedding": 96}.get(self.kind, self.n_mfcc)

    @property
    def frames_per_second(self) -> float:
        """Feature frames per second of audio."""
        if self.kind == "speech_embedding":
            return 12.5  # one vector every 80 ms
        return self.sample_rate / self.decimate / self.hop_length


@dataclass(frozen=True)
class ModelConfig:
    """Encoder. ``mlp``: the tutorial's Flatten + Dense stack over a fixed-size input;
    ``tdnn``: 1-D convolutions over mel channels with attentive statistics pooling (any length)."""

    name: str = "tdnn"
    embedding_dim: int = 128
    channels: int = 128
    hidden: int = 128
    layers: int = 3
    dropout: float = 0.0
    distance: str = "cosine"
    dilation: int = 2  # multiplies the TDNN's dilations (1, 2, 3): wider temporal context
    stride: int = 1  # time stride of the first TDNN layer: fewer frames, wider context, less compute
    spectral_shape: bool = True  # also feed the clip's level-free mean spectrum (removed by the input normalisation)
    ensemble: int = 1  # tdnn: train this many encoders side by side and average their cosine scores
    # tdnn: channels of a 2-D convolutional stem over (band, frame) before the 1-D layers (0: none): filters
    # that slide along the mel axis too, so a pattern is the same feature at any pitch
    stem: int = 0
    # tdnn: a trainable per-channel energy normalisation of the log-mel input (an automatic gain control per band
    # that follows the background) before the mean normalisation; needs features.kind=logmel
    pcen: bool = False

    def __post_init__(self) -> None:
        _choice("model.name", self.name, tuple(ENCODERS))
        _positive("model.dilation", self.dilation)
        _positive("model.stride", self.stride)
        _positive("model.stem", self.stem, allow_zero=True)
        _choice("model.distance", self.distance, tuple(DISTANCES))
        for k in ("embedding_dim", "channels", "hidden", "layers", "ensemble"):
            _positive(f"model.{k}", getattr(self, k))
        if self.ensemble > 1 and (ENCODERS[self.name].fixed_input or self.distance != "cosine"):
            raise ConfigError(f"model.ensemble > 1 needs model.distance=cosine and an encoder of any input length "
                              f"(model.name={self.name} is fixed-size)" if ENCODERS[self.name].fixed_input else
                              "model.ensemble > 1 needs model.distance=cosine")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.dropout: must be in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True)
class LossConfig:
    """Objective. ``contrastive`` and ``triplet`` train on pairs / mined triplets;
    ``aam`` (additive angular margin softmax) and ``subcenter_aam`` on labelled batches.
    ``margin`` is in the loss's own units (distance for contrastive/triplet, radians for AAM)."""

    name: str = "triplet"
    margin: float = 0.3  # triplet: 0.1-0.4 measured, 0.3 best over the three public protocols (RESULTS.md)
    scale: float = 30.0
    sub_centers: int = 3
    # contrastive: floor under the squared distance before its square root. 0 is the tutorial's exact
    # formula, whose gradient is infinite (NaN) where two embeddings coincide: training can diverge.
    distance_eps: float = 1e-7
    # distillation: a file of target embeddings, one per training class (safetensors: ``targets`` and the
    # class names in its metadata; benchmarks/teacher.py writes them from a teacher encoder). The encoder then
    # also learns to predict its class's target through a linear head (dropped after training), weighted by
    # ``teacher_weight``: a class loss only.
    teacher: str = ""
    teacher_weight: float = 1.0
    # > 0: a class loss sees the embedding through a projection head (SimCLR's: Linear, BatchNorm, ReLU,
    # Linear back to the embedding width) of this many hidden units, dropped after training; 0: none
    projection: int = 0

    def __post_init__(self) -> None:
        _choice("loss.name", self.name, tuple(LOSSES))
        _positive("loss.teacher_weight", self.teacher_weight, allow_zero=True)
        _positive("loss.projection", self.projection, allow_zero=True)
        _positive("loss.margin", self.margin, allow_zero=True)
        _positive("loss.distance_eps", self.distance_eps, allow_zero=True)
        _positive("loss.scale", self.scale)
        _positive("loss.sub_centers", self.sub_centers)

    @property
    def uses_pairs(self) -> bool:
        return LOSSES[self.name].pairs


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    scheduler: str = "onecycle"
    val_fraction: float = 0.15
    # what the held-out part (validation, threshold, probabilities) holds out whole: auto, groups,
    # classes or clips (soundtwin.data.validation_split)
    calibrate_on: str = "auto"
    crop_min_s: float = 1.0
    crop_max_s: float = 3.0
    crop_candidates: int = 4  # draw this many random crops and keep the loudest (skips silent stretches)
    pairs_per_clip: int = 1
    fixed_pairs: bool = False  # pair losses: draw the pairs once (the tutorial) instead of afresh every epoch
    sampler: str = "random"  # class losses: "random" batches of similar length, or "balanced" (m clips per class)
    per_class: int = 4  # with sampler=balanced: clips of each class in a batch (raised when classes are few)
    seed: int = 0
    num_threads: int = 0  # 0: all cores
    grad_clip: float = 5.0
    # > 0: the model kept is an exponential moving average of the weights over about this many epochs
    # (decay 1 - 1 / (ema_epochs x steps an epoch)); 0: the last step's weights
    ema_epochs: float = 0.0
    # < 1: layer-wise rate decay, for fine-tuning: each of the encoder's blocks trains at this fraction of the
    # rate of the block above it (the top, its pooling and output layer, and the loss's own weights at train.lr);
    # 1: one rate for every weight
    layer_decay: float = 1.0

    def __post_init__(self) -> None:
        _choice("train.optimizer", self.optimizer, ("adam", "adamw", "rmsprop", "sgd"))
        _choice("train.scheduler", self.scheduler, ("none", "onecycle", "cosine"))
        _choice("train.sampler", self.sampler, ("random", "balanced"))
        _choice("train.calibrate_on", self.calibrate_on, ("auto", "groups", "classes", "clips"))
        _positive("train.per_class", self.per_class)
        for k in ("epochs", "batch_size", "lr", "pairs_per_clip", "crop_candidates"):
            _positive(f"train.{k}", getattr(self, k))
        for k in ("weight_decay", "num_threads", "grad_clip", "ema_epochs"):
            _positive(f"train.{k}", getattr(self, k), allow_zero=True)
        if not 0 < self.layer_decay <= 1:
            raise ConfigError(f"train.layer_decay: must be in (0, 1], got {self.layer_decay!r}")
        if not 0 < self.val_fraction < 0.9:
            raise ConfigError(f"train.val_fraction: must be in (0, 0.9), got {self.val_fraction!r}")
        if not 0 < self.crop_min_s <= self.crop_max_s:
            raise ConfigError("train.crop_min_s must be > 0 and <= train.crop_max_s")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation applied to log-mel features in training (all off in the tutorial preset)."""

    enabled: bool = False  # measured not to pay on our protocols (benchmarks/RESULTS.md); on for noisy data
    noise_prob: float = 0.5
    snr_min_db: float = 5.0
    snr_max_db: float = 30.0
    mix_prob: float = 0.2
    mix_snr_min_db: float = 8.0
    mix_snr_max_db: float = 20.0
    time_masks: int = 2
    time_mask_max: int = 8
    freq_masks: int = 2
    freq_mask_max: int = 8
    gain_db: float = 6.0
    freq_warp: float = 0.0  # mel axis scaled by a factor in [1 - w, 1 + w] (vocal-tract-length perturbation)
    time_stretch: float = 0.0  # each batch's time axis scaled by a factor in [1 - s, 1 + s]
    reverb_prob: float = 0.0  # share of clips given a room's reverberation (RT60 drawn in [0.1, 1] x reverb_rt60)
    reverb_rt60: float = 0.8  # longest reverberation time, seconds
    eq_db: float = 0.0  # each clip's spectrum shaped by a random piecewise-linear curve of +-eq_db dB over the mel
    # bands (a microphone's or a room's colouring; FilterAugment, Nam et al. 2022); 0: off

    def __post_init__(self) -> None:
        if not 0 <= self.freq_warp < 0.5 or not 0 <= self.time_stretch < 0.5:
            raise ConfigError("augment.freq_warp and augment.time_stretch must be in [0, 0.5)")
        if not 0 < self.reverb_rt60 <= 3:
            raise ConfigError(f"augment.reverb_rt60: must be in (0, 3] seconds, got {self.reverb_rt60!r}")
        for k in ("noise_prob", "mix_prob", "reverb_prob"):
            v = getattr(self, k)
            if not 0 <= v <= 1:
                raise ConfigError(f"augment.{k}: must be in [0, 1], got {v!r}")
        if not 0 <= self.eq_db <= 24:
            raise ConfigError(f"augment.eq_db: must be in [0, 24] dB, got {self.eq_db!r}")
        for k in ("time_masks", "time_mask_max", "freq_masks", "freq_mask_max", "gain_db"):
            _positive(f"augment.{k}", getattr(self, k), allow_zero=True)


@dataclass(frozen=True)
class ExperimentConfig:
    preset: str = "default"
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if ENCODERS[self.model.name].fixed_input and self.features.max_frames == 0:
            raise ConfigError(f"model.name={self.model.name} needs a fixed input: set features.max_frames > 0")
        if self.model.pcen and (self.model.name != "tdnn" or self.features.kind != "logmel"):
            raise ConfigError(f"model.pcen needs model.name=tdnn and features.kind=logmel (the band powers), got "
                              f"model.name={self.model.name}, features.kind={self.features.kind}")
        if self.model.ensemble > 1 and self.loss.uses_pairs:
            raise ConfigError(f"model.ensemble > 1 trains on labelled batches: loss.name={self.loss.name} is a pair loss")
        if self.loss.teacher and self.loss.uses_pairs:
            raise ConfigError(f"loss.teacher: distillation needs a class loss, not the pair loss {self.loss.name}")
        if self.loss.projection and self.loss.uses_pairs:
            raise ConfigError(f"loss.projection: a projection head needs a class loss, not the pair loss "
                              f"{self.loss.name}")
        need = LOSSES[self.loss.name].distance
        if need is not None and self.model.distance != need:
            raise ConfigError(f"loss.name={self.loss.name} compares embeddings by {need}: set model.distance={need}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, ExperimentConfig] = {
    "default": ExperimentConfig(),
    # what pretrained the `sound` built-in (benchmarks/pretrain.py --preset sound --labels kind --set
    # train.epochs=60: twice the preset's epochs measured better on unseen sound classes, 2 seeds): the default
    # network with a contrastive loss over every clip of the batch and stronger augmentation (mixing, warping,
    # stretching), for clips that are each their own class or one of a few takes (src/soundtwin/pretrained/sound)
    "sound": ExperimentConfig(
        preset="sound",
        loss=LossConfig(name="supcon", scale=10.0),
        augment=AugmentConfig(enabled=True, mix_prob=0.5, freq_warp=0.1, time_stretch=0.15),
    ),
    "tutorial": ExperimentConfig(
        preset="tutorial",
        features=FeatureConfig(kind="tutorial", sample_rate=22050, n_fft=2048, win_length=2048,
                               hop_length=512, n_mels=128, n_mfcc=20, fmin=0.0, max_frames=400, decimate=3),
        model=ModelConfig(name="mlp", embedding_dim=128, hidden=128, layers=3, dropout=0.1, distance="euclidean",
                          dilation=1, spectral_shape=False),
        loss=LossConfig(name="contrastive", margin=1.0, distance_eps=0.0),  # K.sqrt(K.sum(K.square(x - y)))
        train=TrainConfig(epochs=13, batch_size=128, optimizer="rmsprop", lr=1e-3, scheduler="none",
                          grad_clip=0.0, crop_min_s=1.0, crop_max_s=1.0, crop_candidates=1,
                          fixed_pairs=True, val_fraction=0.25,  # Keras validation_split=.25 (of the pairs)
                          calibrate_on="clips"),
        augment=AugmentConfig(enabled=False),
    ),
}


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _coerce(name: str, value: Any, typ: Any) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):  # YAML 1.1 reads `lr: 2e-4` as a str
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - all config leaves are scalars
        raise ConfigError(f"{name}: unsupported type {typ}")
    raise ConfigError(f"{name}: expected {typ.__name__}, got {type(value).__name__} {value!r}")


def _merge(obj: Any, updates: dict[str, Any], prefix: str = "") -> Any:
    """Return a copy of dataclass ``obj`` with nested ``updates`` applied, type-checked."""
    if not isinstance(updates, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a table of keys, got {updates!r}")
    hints = typing.get_type_hints(type(obj))
    known = {f.name for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"unknown config key {name!r} (valid: {', '.join(sorted(prefix + k for k in known))})")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, prefix=f"{name}.")
        else:
            changes[key] = _coerce(name, value, hints[key])
    try:
        return replace(obj, **changes)
    except TypeError as exc:  # pragma: no cover
        raise ConfigError(str(exc)) from None


def apply_overrides(cfg: ExperimentConfig, overrides: list[str] | tuple[str, ...]) -> ExperimentConfig:
    """``cfg`` with ``section.key=value`` overrides applied, each checked like the command line's ``--set``."""
    for item in overrides:
        cfg = _merge(cfg, parse_override(item))
    return cfg


def changed_keys(a: ExperimentConfig, b: ExperimentConfig) -> list[str]:
    """Dotted names of the fields whose values differ between two configs."""
    def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def parse_override(item: str) -> dict[str, Any]:
    """Turn ``"train.epochs=5"`` into ``{"train": {"epochs": 5}}`` (the value parsed as YAML)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. train.epochs=5)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if value is None:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; a number is meant
        try:
            value = float(value) if any(ch.isdigit() for ch in value) else value
        except ValueError:
            pass
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``), JSON (``.json``: a model directory's ``config.json`` too) or TOML
    (``.toml``) file into a plain dict (safe loaders only). JSON is read as JSON, not as YAML: YAML 1.1 reads
    ``1e-07``, the way JSON writers put small floats, as a string."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path}: config must be .yaml, .yml, .json or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse config ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of sections")
    return data


def config_from_dict(data: dict[str, Any], *, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """Build a config from a nested dict (as saved with a model), starting from its preset."""
    data = dict(data)
    preset = data.get("preset", base.preset if base else "default")
    if preset not in PRESETS:
        raise ConfigError(f"preset: {preset!r} is not one of {', '.join(PRESETS)}")
    start = base if base is not None and base.preset == preset else PRESETS[preset]
    try:
        return _merge(start, data)
    except ConfigError:
        raise


def load_config(
    preset: str | None = None,
    config_file: str | os.PathLike[str] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> ExperimentConfig:
    """Preset, then file, then overrides, each applied over the last."""
    file_data = read_config_file(config_file) if config_file else {}
    name = preset or file_data.get("preset") or "default"
    if name not in PRESETS:
        raise ConfigError(f"preset: {name!r} is not one of {', '.join(PRESETS)}")
    cfg = _merge(PRESETS[name], {**file_data, "preset": name})
    for item in overrides:
        cfg = _merge(cfg, parse_override(item))
    return cfg
