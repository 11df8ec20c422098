"""``python -m soundtwin``: the command line."""

from .cli import main

main()
