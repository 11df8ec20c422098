"""What ``--resume`` needs beyond the model: the objective's and optimiser's state and the step count,
stored as safetensors (tensors) with JSON metadata (scalars); no pickles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import ModelError
from ..io import read_json
from ..runtime.modeldir import META, TRAIN_STATE
from ..store import read_version


def state_bytes(loss: torch.nn.Module, opt: torch.optim.Optimizer, global_step: int,
                live: dict[str, torch.Tensor] | None = None, n_averaged: int = 0) -> bytes:
    """The training state as safetensors bytes (tensors copied to the CPU). With weight averaging the model
    holds the average, and the state the weights trained on (``live``) and how many steps were averaged."""
    tensors: dict[str, torch.Tensor] = {f"loss.{k}": v.detach().cpu().contiguous() for k, v in loss.state_dict().items()}
    for k, v in (live or {}).items():
        tensors[f"live.{k}"] = v.detach().cpu().contiguous()
    state = opt.state_dict()
    scalars: dict[str, Any] = {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    meta = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars),
            "global_step": str(global_step), "n_averaged": str(n_averaged)}
    return st_save(tensors, metadata=meta)


def load_state(blob: bytes, meta: dict[str, str], loss: torch.nn.Module, opt: torch.optim.Optimizer
               ) -> tuple[int, dict[str, torch.Tensor] | None, int]:
    """Put a saved state into ``loss`` and ``opt`` (moved to their parameters' device); returns the
    global step it was saved at, the weights trained on when the model holds their average (else None) and
    how many steps that average holds."""
    tensors = st_load(blob)
    live = {k[5:]: v for k, v in tensors.items() if k.startswith("live.")} or None
    loss.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("loss.")})
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for k, v in json.loads(meta["scalars"]).items():
        pid, name = k.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    return int(meta["global_step"]), live, int(meta.get("n_averaged", "0"))


def read_state(model_dir: Path) -> tuple[bytes, dict[str, str], dict[str, Any]]:
    """``(state bytes, their metadata, the model's meta.json)``, from one version of the model."""

    def read(vd: Path) -> tuple[bytes, dict[str, str], dict[str, Any]]:
        path = vd / TRAIN_STATE
        if not path.is_file():
            raise ModelError(f"{model_dir}: nothing to resume (no {TRAIN_STATE})")
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
        return path.read_bytes(), meta, read_json(vd / META)

    return read_version(model_dir, read)
