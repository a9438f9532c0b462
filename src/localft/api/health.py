"""`GET /health` (liveness plus a database round trip) and `GET /version`; both open without an API key."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from localft import __version__
from localft.jobs.store import Store

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
    """The database dialect in use (`sqlite` or `postgresql`)."""
    embedded_worker: bool


class Version(BaseModel):
    version: str


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    store: Store = request.app.state.store
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Health(
        status="ok",
        version=__version__,
        database=store.engine.dialect.name,
        embedded_worker=request.app.state.worker is not None,
    )


@router.get("/version", response_model=Version)
def version() -> Version:
    return Version(version=__version__)
