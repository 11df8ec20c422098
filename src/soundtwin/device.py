"""Where the math runs: one device setting (``--device auto|cpu|cuda``) and the thread caps.

Every model, tensor and batch goes through :func:`resolve_device`; CPU is the default (and CI's), so
results are reproducible on any machine unless a GPU is asked for.
"""

from __future__ import annotations

from typing import Any

from .errors import SoundtwinError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(spec: Any = "cpu") -> Any:
    """A ``torch.device`` for ``"cpu"``, ``"cuda"`` (``"cuda:N"``), or ``"auto"`` (the GPU when there is
    one, else the CPU). Asking for a GPU on a machine without one is an error naming the setting."""
    import torch

    if isinstance(spec, torch.device):
        return spec
    name = str(spec or "cpu").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SoundtwinError(f"--device {name}: no CUDA GPU is available here (torch {torch.__version__}); "
                                 f"use --device cpu or auto")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SoundtwinError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
        return dev
    raise SoundtwinError(f"--device {spec!r} is not one of {', '.join(DEVICES)} (or cuda:N)")


def limit_math_threads(n: int, *, torch_too: bool) -> None:
    """Cap numpy's BLAS (and torch's intra-op pool) at ``n`` threads for the rest of the process.

    A server runs requests side by side; letting each one's matrix products spread over every core as
    well oversubscribes them: under 16 concurrent clients on 2 cores this halved throughput
    (benchmarks/RESULTS.md, "HTTP service under load")."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n, user_api="blas")
    if torch_too:
        import torch

        torch.set_num_threads(n)
