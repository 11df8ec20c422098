"""``soundtwin serve``: the HTTP service (the ``server`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SoundtwinError
from .common import Device, command

@command()
def serve(
    model: Annotated[Optional[Path], typer.Argument(help="A model directory or a built-in model's name (default: "
                                                         "the default built-in; see soundtwin models).",
                                                    show_default=False)] = None,
    gallery: Annotated[Optional[Path], typer.Option("--gallery", help="Gallery directory (created on first enrollment).")] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    max_bytes: Annotated[int, typer.Option(help="Largest accepted upload in bytes.")] = 10 * 1024 * 1024,
    max_seconds: Annotated[float, typer.Option(help="Longest accepted clip in seconds.")] = 30.0,
    runtime: Annotated[str, typer.Option(help="torch or onnx.")] = "torch",
    device: Device = "cpu",
    threads_per_request: Annotated[int, typer.Option(min=1, help="Math threads each request may use (requests already run in parallel).")] = 1,
    max_files: Annotated[int, typer.Option(min=1, help="Most uploads in one request.")] = 16,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Largest request body in bytes (refused as soon as it passes).")] = 64 * 1024 * 1024,
    upload_timeout: Annotated[float, typer.Option(help="Seconds a request body may take to arrive.")] = 30.0,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Threads decoding and computing (default: cores / threads-per-request).")] = None,
) -> None:
    """Serve the model over HTTP with a web page at / (needs the 'server' extra)."""
    import os
    import socket

    from ..device import limit_math_threads
    from ..errors import require_extra

    require_extra("server", "the server", "fastapi", "uvicorn", "python_multipart", "fastapi_offline")
    if model is None:
        from ..pretrained import DEFAULT

        model = Path(DEFAULT)
    import uvicorn

    from ..server import create_app

    if runtime not in ("torch", "onnx"):
        raise SoundtwinError(f"--runtime must be torch or onnx, got {runtime!r}")
    try:  # say the port is taken before anything else
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        raise SoundtwinError(f"cannot listen on {host}:{port} ({exc.strerror}): is another server using the port?") from None
    limit_math_threads(threads_per_request, torch_too=runtime == "torch")
    n_workers = workers or max(1, (os.cpu_count() or 1) // threads_per_request)
    app_ = create_app(model, gallery, max_bytes=max_bytes, max_seconds=max_seconds, runtime=runtime, device=device,
                      max_files=max_files, max_request_bytes=max_request_bytes, upload_timeout=upload_timeout,
                      workers=n_workers)
    typer.echo(f"serving {model} on http://{host}:{port}/ (docs at /docs)")
    sock.listen(2048)
    config = uvicorn.Config(app_, log_level="warning", timeout_keep_alive=5)
    uvicorn.Server(config).run(sockets=[sock])
