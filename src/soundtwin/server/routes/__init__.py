"""HTTP routes, one ``APIRouter`` per resource. Adding a route: put it in the router of its resource,
or write ``routes/<resource>.py`` with a ``router`` and add it to :data:`ROUTERS`."""

from __future__ import annotations

from . import clips, gallery, info

ROUTERS = [info.router, clips.router, gallery.router]
