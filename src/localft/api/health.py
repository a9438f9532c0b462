"""`GET /health` (liveness plus a database round trip) and `GET /version`; both open without an API key.

Both say what the server computes on (`compute`: device, precision, GPUs), so a user can tell a CPU build of torch
from a GPU one without reading logs.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from localft import __version__
from localft.jobs.store import Store

router = APIRouter(tags=["health"])


class Compute(BaseModel):
    """`localft.devices.DeviceReport` on the wire."""

    device: str
    """`cpu`, `cuda`, `cuda:N` or `mps`."""
    precision: str
    """`bf16` or `fp32`."""
    name: str
    torch: str
    cuda: str | None
    gpus: list[str]
    memory_gib: float | None


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
    """The database dialect in use (`sqlite` or `postgresql`)."""
    embedded_worker: bool
    executor: str
    """Who runs queued jobs: `embedded` (worker threads and processes) or `ray`."""
    compute: Compute


class Version(BaseModel):
    version: str
    compute: Compute


def _compute(request: Request) -> Compute:
    report: dict[str, Any] = request.app.state.compute.to_dict()
    return Compute(**report)


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    store: Store = request.app.state.store
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Health(
        status="ok",
        version=__version__,
        database=store.engine.dialect.name,
        embedded_worker=request.app.state.worker is not None and request.app.state.settings.executor == "embedded",
        executor=request.app.state.settings.executor,
        compute=_compute(request),
    )


@router.get("/version", response_model=Version)
def version(request: Request) -> Version:
    return Version(version=__version__, compute=_compute(request))
