"""What one request may cost: the limits, and the ASGI middleware that enforces the body's size and time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException


@dataclass(frozen=True)
class Limits:
    """What one request may cost (see the module docstring)."""

    max_bytes: int = 10 * 1024 * 1024  # one upload
    max_seconds: float = 30.0  # one clip
    max_files: int = 16  # uploads in one request
    max_request_bytes: int = 64 * 1024 * 1024  # the whole body
    upload_timeout: float = 30.0  # seconds for the whole body to arrive
    max_channels: int = 8
    max_rate: int = 192_000


class BodyLimit:
    """ASGI middleware: refuse a body over ``max_request_bytes`` (by its header, or as soon as the
    bytes received pass it) or one that takes longer than ``upload_timeout`` to arrive."""

    def __init__(self, app: Any, limits: Limits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        lim = self.limits
        for k, v in scope.get("headers", []):
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    n = -1
                if n < 0 or n > lim.max_request_bytes:
                    await _refuse(send, 413, f"request body of {v.decode(errors='replace')} bytes is over the "
                                             f"{lim.max_request_bytes} byte limit")
                    return
        received = 0
        deadline = time.monotonic() + lim.upload_timeout

        async def limited() -> dict:
            nonlocal received
            left = deadline - time.monotonic()
            try:
                msg = await asyncio.wait_for(receive(), timeout=max(left, 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {lim.upload_timeout:g} s",
                                    headers={"Connection": "close"}) from None
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > lim.max_request_bytes:
                    raise HTTPException(413, f"request body over the {lim.max_request_bytes} byte limit",
                                        headers={"Connection": "close"})
            return msg

        await self.app(scope, limited, send)


async def _refuse(send: Callable, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
