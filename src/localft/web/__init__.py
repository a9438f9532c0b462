"""The dashboard: static pages served at `/` that talk only to the public `/v1` API.

`create_app` mounts `router` when this package imports; nothing here knows about the job store or the engine,
so what the page shows is exactly what the API says.
"""

from localft.web.router import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]
