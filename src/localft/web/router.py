"""Serves the dashboard's single page at `/` and its assets under `/static/`.

The files are plain HTML, CSS and ES modules shipped in the package (no build step). They are served by a
route rather than a `StaticFiles` mount because `include_router` copies routes, not mounts.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page is small and changes with the package version: revalidate rather than cache stale modules.
_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The dashboard page; every view lives behind a `#/...` hash, so this is the only HTML route."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_HEADERS)


@router.get("/static/{asset_path:path}")
def static_asset(asset_path: str) -> FileResponse:
    """A file under the package's `static/` folder; anything resolving outside it is a 404."""
    try:
        target = (STATIC_DIR / asset_path).resolve()
        found = target.is_relative_to(STATIC_DIR) and target.is_file()
    except (OSError, ValueError):  # a name the file system refuses to look up (too long, a NUL byte)
        found = False
    if not found:
        raise HTTPException(status_code=404, detail=f"No such dashboard asset: {asset_path[:200]}")
    return FileResponse(target, headers=_HEADERS)
