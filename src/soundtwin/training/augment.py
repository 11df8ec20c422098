"""Training-time augmentation on batches of log-mel features ``(batch, n_mels, frames)``.

Working on cached features instead of waveforms keeps training free of decoding. Noise and
clip mixing are added in the power domain (``log(exp(x) + n)``), so they behave like additive
sound at a chosen SNR; reverberation convolves each band's power with a room's exponentially
decaying energy envelope (the power-domain counterpart of a synthetic impulse response, as in
Polack's statistical model of late reverberation); a random colouring (FilterAugment) adds a
piecewise-linear curve in dB over the mel bands, as a microphone or a room would; SpecAugment
masks replace bands or spans by the clip's mean.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..config import AugmentConfig
from ..encoders.layers import length_mask


def warp_frequency(x: torch.Tensor, factors: np.ndarray) -> torch.Tensor:
    """Scale the mel axis of each clip by its factor (> 1 moves energy down), linear interpolation."""
    b, f, t = x.shape
    src = torch.clamp(torch.arange(f, dtype=torch.float32)[None, :] * torch.from_numpy(factors.astype(np.float32))[:, None],
                      0, f - 1)  # (b, f)
    lo = src.floor().long()
    hi = torch.clamp(lo + 1, max=f - 1)
    w = (src - lo.float())[:, :, None]
    take = lambda idx: torch.gather(x, 1, idx[:, :, None].expand(b, f, t))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def stretch_time(x: torch.Tensor, lengths: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample the time axis of a whole batch by ``factor`` (> 1 makes clips longer)."""
    t = x.shape[-1]
    new_t = max(2, int(round(t * factor)))
    x = torch.nn.functional.interpolate(x, size=new_t, mode="linear", align_corners=False)
    return x, torch.clamp((lengths.float() * new_t / t).round().long(), 1, new_t)


#: Direct-to-reverberant energy ratio of a reverberated clip, drawn in this range (dB): a source near the
#: microphone (12 dB) to one about as far as the room's critical distance (0 dB).
DRR_DB = (0.0, 12.0)


def reverberate(power: torch.Tensor, rt60: np.ndarray, drr_db: np.ndarray, frame_s: float) -> torch.Tensor:
    """Each clip's mel power ``(batch, n_mels, frames)`` heard in a room: the direct sound plus a tail whose
    energy decays by 60 dB over ``rt60[i]`` seconds and holds ``10 ** (-drr_db[i] / 10)`` of the direct
    sound's energy. ``rt60[i] == 0`` leaves clip ``i`` as it is. Causal: nothing moves earlier in time."""
    b, f, t = power.shape
    k = int(math.ceil(float(rt60.max()) / frame_s)) + 1  # taps: the direct sound, then the tail's frames
    lag = np.arange(1, k, dtype=np.float64) * frame_s
    tail = np.exp(-13.8155 * lag[None, :] / np.maximum(rt60[:, None], 1e-9))  # (b, k - 1); RT60 0: all 0
    tail *= 10 ** (-drr_db[:, None] / 10) / np.maximum(tail.sum(1, keepdims=True), 1e-300)
    env = np.concatenate([np.ones((b, 1)), tail], axis=1)
    kernel = torch.from_numpy(env[:, ::-1].astype(np.float32).copy())  # (b, k), flipped for conv1d
    weight = kernel.repeat_interleave(f, dim=0)[:, None, :]  # (b * f, 1, k)
    padded = torch.nn.functional.pad(power.reshape(1, b * f, t), (k - 1, 0))
    return torch.nn.functional.conv1d(padded, weight, groups=b * f).reshape(b, f, t)


#: (fewest, most) inner knots of a random colouring's curve: 2-5 straight pieces, as FilterAugment's 2-5 bands
EQ_PIECES = (1, 4)


def eq_curves(b: int, f: int, most_db: float, rng: np.random.Generator) -> np.ndarray:
    """``(b, f)`` gains in dB, one random colouring a clip: a piecewise-linear curve over the mel bands through
    1-4 inner knots at random bands, each knot and both ends drawn in [-most_db, most_db]."""
    out = np.empty((b, f))
    grid = np.arange(f, dtype=np.float64)
    for i in range(b):
        k = min(int(rng.integers(*EQ_PIECES, endpoint=True)), max(f - 2, 0))
        inner = np.sort(rng.choice(np.arange(1, f - 1), k, replace=False))
        knots = np.concatenate([[0], inner, [f - 1]]).astype(np.float64)
        out[i] = np.interp(grid, knots, rng.uniform(-most_db, most_db, knots.size))
    return out


def augment_batch(x: torch.Tensor, lengths: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator,
                  *, frame_s: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Return an augmented copy of log-mel batch ``x`` and its (possibly stretched) lengths;
    padding beyond the lengths is zero. ``frame_s``: the features' hop in seconds (for reverberation)."""
    if cfg.time_stretch > 0:
        x, lengths = stretch_time(x, lengths, float(rng.uniform(1 - cfg.time_stretch, 1 + cfg.time_stretch)))
    if cfg.freq_warp > 0:
        x = warp_frequency(x, rng.uniform(1 - cfg.freq_warp, 1 + cfg.freq_warp, x.shape[0]))
    b, f, t = x.shape
    mask = length_mask(lengths, t).to(x.dtype)  # (b, 1, t)
    n_valid = mask.sum(-1, keepdim=True).clamp(min=1.0)
    ln10 = math.log(10.0) / 10.0
    x = x + torch.from_numpy(rng.uniform(-cfg.gain_db, cfg.gain_db, (b, 1, 1)).astype(np.float32)) * ln10
    if cfg.eq_db > 0:  # (draws nothing when off: runs without it stay as they were)
        x = x + torch.from_numpy(eq_curves(b, f, cfg.eq_db, rng).astype(np.float32))[:, :, None] * ln10
    power = torch.exp(x) * mask
    if cfg.reverb_prob > 0:  # (draws nothing when off: runs without it stay as they were)
        rt60 = np.where(rng.random(b) < cfg.reverb_prob, rng.uniform(0.1, 1.0, b) * cfg.reverb_rt60, 0.0)
        power = reverberate(power, rt60, rng.uniform(*DRR_DB, b), frame_s) * mask
    level = power.sum((1, 2), keepdim=True) / (n_valid * f)  # mean power per bin and frame
    extra = torch.zeros_like(power)
    noisy = torch.from_numpy((rng.random(b) < cfg.noise_prob).astype(np.float32))[:, None, None]
    if noisy.any():
        snr = torch.from_numpy(rng.uniform(cfg.snr_min_db, cfg.snr_max_db, (b, 1, 1)).astype(np.float32))
        tilt = torch.from_numpy(rng.uniform(-3, 3, (b, 1, 1)).astype(np.float32))
        shape = torch.exp(tilt * torch.linspace(-1, 1, f)[None, :, None])
        shape = shape / shape.mean(1, keepdim=True)
        fluct = torch.from_numpy(rng.gamma(4.0, 0.25, (b, f, t)).astype(np.float32))
        extra += noisy * level * 10 ** (-snr / 10) * shape * fluct
    mixed = torch.from_numpy((rng.random(b) < cfg.mix_prob).astype(np.float32))[:, None, None]
    if mixed.any() and b > 1:
        perm = torch.from_numpy(np.roll(np.arange(b), 1))
        other, other_level = power[perm], level[perm].clamp(min=1e-12)
        snr = torch.from_numpy(rng.uniform(cfg.mix_snr_min_db, cfg.mix_snr_max_db, (b, 1, 1)).astype(np.float32))
        extra += mixed * other * (level / other_level) * 10 ** (-snr / 10)
    x = torch.log(power + extra * mask + 1e-8)
    mean = (x * mask).sum(-1, keepdim=True) / n_valid  # (b, f, 1)
    for _ in range(cfg.freq_masks):
        w = rng.integers(0, cfg.freq_mask_max + 1, b)
        s = rng.integers(0, np.maximum(f - w, 1))
        band = (torch.arange(f)[None, :] >= torch.from_numpy(s)[:, None]) & \
               (torch.arange(f)[None, :] < torch.from_numpy(s + w)[:, None])
        x = torch.where(band[:, :, None], mean, x)
    for _ in range(cfg.time_masks):
        w = np.minimum(rng.integers(0, cfg.time_mask_max + 1, b), (lengths.numpy() // 5))
        s = rng.integers(0, np.maximum(lengths.numpy() - w, 1))
        span = (torch.arange(t)[None, :] >= torch.from_numpy(s)[:, None]) & \
               (torch.arange(t)[None, :] < torch.from_numpy(s + w)[:, None])
        x = torch.where(span[:, None, :], mean, x)
    return x * mask, lengths
