"""Optimisers and the learning-rate schedule (a torch ``LambdaLR``: its step count is its state)."""

from __future__ import annotations

import functools
import math

import torch

from ..config import ExperimentConfig


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


def build_optimizer(cfg: ExperimentConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    t = cfg.train
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
        g["initial_lr"] = cfg.train.lr
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, functools.partial(lr_factor, total=total_steps, schedule=cfg.train.scheduler), last_epoch=start_step - 1)
    return sched
