"""``soundtwin demo``: the main job end to end on synthetic sounds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import command

@command()
def demo(
    workdir: Annotated[Optional[Path], typer.Option(help="Where to write the synthetic data and model.")] = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 6,
) -> None:
    """Run the main job end to end on synthetic sounds: make data, train, evaluate, compare."""
    from ..demo import run_demo

    run_demo(workdir, epochs=epochs, echo=typer.echo)
