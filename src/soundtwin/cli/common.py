"""What every command shares: the Typer app, error handling, option types, output helpers."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from ..errors import SoundtwinError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Siamese-network audio verification and few-shot sound recognition.")

F = TypeVar("F", bound=Callable[..., Any])


def fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turn library errors into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SoundtwinError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a command on the app, with library errors turned into one line (``@command()``)."""

    def register(fn: F) -> F:
        return app.command(name)(handles_errors(fn))  # type: ignore[return-value]

    return register


def echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=None, sort_keys=True))


def warn(messages: Any) -> None:
    for w in messages:
        typer.echo(f"warning: {w}", err=True)


ModelDir = Annotated[Path, typer.Argument(help="A trained model directory.", show_default=False)]
Cache = Annotated[Optional[Path], typer.Option("--cache", help="Feature cache folder (default ~/.cache/soundtwin).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]
Runtime = Annotated[str, typer.Option(help="torch, onnx, or auto: onnx when the model holds its model.onnx "
                                             "(soundtwin export; starts much faster), else torch.")]
Device = Annotated[str, typer.Option(help="Where the network runs: cpu, cuda (cuda:N) or auto (a GPU when there is "
                                            "one). auto and cuda use the torch runtime.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Threshold = Annotated[Optional[float], typer.Option(
    "--threshold", help="Decide at this score instead of the stored threshold, for this call only (nothing is "
                        "saved; probabilities do not change).", show_default=False)]


def cache_arg(cache: Optional[Path], no_cache: bool) -> Path | None | bool:
    return False if no_cache else cache
