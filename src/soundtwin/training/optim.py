"""Optimisers and the learning-rate schedule (a torch ``LambdaLR``: its step count is its state)."""

from __future__ import annotations

import functools
import math

import torch

from ..config import ExperimentConfig
from ..errors import ConfigError


def lr_factor(step: int, total: int, schedule: str) -> float:
    """The learning rate at a global step as a fraction of the base rate: constant (``none``), cosine
    decay to 1 % (``cosine``), or one-cycle (``onecycle``: 10 % warm-up from 4 %, cosine down to 0.1 %)."""
    if schedule == "none" or total <= 1:
        return 1.0
    p = min(step / (total - 1), 1.0)
    if schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))
    warm = 0.1
    if p < warm:
        return 0.04 + 0.96 * p / warm
    q = (p - warm) / (1 - warm)
    return 0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * q))


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


def param_groups(cfg: ExperimentConfig, encoder: torch.nn.Module, loss: torch.nn.Module) -> list[dict]:
    """The optimiser's parameter groups, each with its ``lr_scale`` (a fraction of ``train.lr``): one group, or
    with ``train.layer_decay`` < 1 one per encoder block, the output end (with the loss's weights) at the full
    rate and each block below at ``layer_decay`` times the rate of the one above."""
    d = cfg.train.layer_decay
    if d == 1:
        return [{"params": [*encoder.parameters(), *loss.parameters()], "lr_scale": 1.0}]
    if not hasattr(encoder, "layer_groups"):
        raise ConfigError(f"train.layer_decay={d} needs an encoder made of blocks (model.name=tdnn); "
                          f"model.name={cfg.model.name} has none")
    groups = encoder.layer_groups()
    groups[0] = [*groups[0], *loss.parameters()]
    return [{"params": g, "lr_scale": d ** k} for k, g in enumerate(groups)]


def build_optimizer(cfg: ExperimentConfig, params: list[dict] | list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimiser over :func:`param_groups` (each group's rate ``train.lr`` times its ``lr_scale``), or over
    a plain list of weights (one group at ``train.lr``)."""
    t = cfg.train
    groups = params if params and isinstance(params[0], dict) else [{"params": list(params)}]
    params = [{**g, "lr": t.lr * g.get("lr_scale", 1.0)} for g in groups]
    if t.optimizer == "rmsprop":  # Keras defaults: rho 0.9, epsilon 1e-7 inside the square root
        return KerasRMSprop(params, lr=t.lr)
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=0.9, weight_decay=t.weight_decay, nesterov=True)
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def build_scheduler(cfg: ExperimentConfig, opt: torch.optim.Optimizer, total_steps: int,
                    start_step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """The schedule over ``total_steps`` optimiser steps, positioned at ``start_step`` (a resumed run:
    the rate is recomputed for the run's current length, so lengthening it re-spreads the decay)."""
    for g in opt.param_groups:
        g["initial_lr"] = cfg.train.lr * g.get("lr_scale", 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, functools.partial(lr_factor, total=total_steps, schedule=cfg.train.scheduler), last_epoch=start_step - 1)
    return sched
