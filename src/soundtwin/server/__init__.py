"""The HTTP service (the ``server`` extra): :func:`create_app` builds it for one model."""

from .app import create_app

__all__ = ["create_app"]
