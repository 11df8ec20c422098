"""soundtwin: Siamese-network audio verification and few-shot sound recognition."""

__version__ = "0.1.0"

import os as _os

# OpenMP threads (torch's intra-op pool) wait for work by spinning by default: on a 2-core laptop where
# anything else runs, each of training's many small parallel regions then waits for a descheduled
# spinner, and an epoch took 10-20 times longer (benchmarks/RESULTS.md, "Training beside other work").
# Passive waiting costs little when the cores are free. Set before torch starts its pool; an explicit
# OMP_WAIT_POLICY in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lazy_loader as _lazy  # noqa: E402

# Public names, imported on first use: ``import soundtwin`` (and every CLI command) starts without
# torch, librosa or scipy until a command needs them.
__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "errors": ["AudioError", "ConfigError", "DatasetError", "GalleryError", "MissingExtraError", "ModelError",
               "NoSoundError", "SoundtwinError"],
    "audio": ["load_audio"],
    "config": ["ExperimentConfig", "load_config"],
    "distance": ["get_distance"],
    "runtime": ["Decision", "load_verifier"],
    "runtime.torch_runtime": ["Verifier"],
    "gallery": ["Gallery"],
    "training": ["train"],
})
__all__ += ["__version__"]
