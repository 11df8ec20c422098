"""The ``soundtwin`` command line: one module per command group, all registered on one Typer app.

Adding a command: a function decorated with ``@command()`` (from :mod:`.common`) in the module of its
group, or in a new module imported below. Errors become one line on stderr and exit code 2.
"""

from __future__ import annotations

import logging

# each module registers its commands, in this order in --help
from . import train  # noqa: F401, I001
from . import model  # noqa: F401
from . import demo  # noqa: F401
from . import gallery  # noqa: F401
from . import serve  # noqa: F401
from . import scale  # noqa: F401
from .common import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``soundtwin`` entry point: warnings from the library's logger on stderr, then the command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
