"""The ``sound`` built-in: soundtwin's own general-sound encoder, a model directory shipped inside the package
(``pretrained/sound/``: ``config.json``, ``model.safetensors``, ``meta.json`` and ``MODEL_CARD.md``, which says
what it was pretrained on and how). It loads as any model directory does; its threshold and probabilities are the
shipped calibration's (``calibration.json``), fitted on held-out sound classes, not on its pretraining clips."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: ``--from sound`` trains at a tenth of the pretraining's learning rate: on classes absent from the fine-tuning
#: data (heldout-sounds, heldout-digits-a) lr 2e-4 gave 0.2055 / 0.1395 EER against 0.257 / 0.2005 at 2e-3; on
#: the fine-tuning data's own classes (catsdogs) 2e-3 did better (0.0925 against 0.2355): ``--set train.lr=2e-3``
#: there (benchmarks/finetune_sound_results.json; the 60-epoch weights, seed 0)
FINETUNE = ("train.lr=2e-4",)


def load(b: Any, weights: Path, cal: dict[str, Any], *, device: Any = "cpu",
         cache_dir: str | os.PathLike[str] | None | bool = None) -> Any:
    from ..runtime.torch_runtime import Verifier

    v = Verifier.load(weights.parent, cache_dir=cache_dir, device=device)
    if "threshold" in cal:
        v.threshold = float(cal["threshold"])
        v.calibration = (float(cal["calibration"]["a"]), float(cal["calibration"]["b"]))
        v.meta.update({k: cal[k] for k in ("threshold_rule", "heldout_eer", "data", "expected") if k in cal})
        for k in ("heldout", "heldout_classes"):  # (those were its pretraining's: two halves of one clip)
            v.meta.pop(k, None)
    v.meta.update({"builtin": b.name, "source": f"soundtwin {b.weights}", "licence": b.licence})
    v.builtin = b.name
    v.model_dir = None
    return v
