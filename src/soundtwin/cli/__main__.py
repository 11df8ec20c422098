"""``python -m soundtwin.cli``: the command line."""

from . import main

main()
