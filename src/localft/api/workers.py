"""`GET /v1/workers`, a localft extension: the training workers heard from within their lease, and their jobs.

Workers are shared by every project; a caller sees which job a worker runs only when it may see that job.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from localft.api.auth import caller_of
from localft.errors import NotFoundError
from localft.jobs.store import Store

router = APIRouter(tags=["workers"])


class WorkerObject(BaseModel):
    id: str = Field(description="host:pid:random, as the worker's jobs name it.")
    object: Literal["worker"] = "worker"
    host: str
    pid: int
    started_at: int
    last_seen_at: int
    job_id: str | None = Field(description="The job it is running; null when idle (or not yours to see).")


class WorkerList(BaseModel):
    object: Literal["list"] = "list"
    data: list[WorkerObject]


@router.get("/workers", response_model=WorkerList)
def list_workers(request: Request) -> WorkerList:
    """Live workers, oldest first: the server's embedded one and every `localft worker` on its database."""
    store: Store = request.app.state.store
    project = caller_of(request).scope
    data = [
        WorkerObject(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            started_at=int(worker.started_at),
            last_seen_at=int(worker.seen_at),
            job_id=worker.job_id if worker.job_id and _visible(store, worker.job_id, project) else None,
        )
        for worker in store.live_workers()
    ]
    return WorkerList(data=data)


def _visible(store: Store, job_id: str, project: str | None) -> bool:
    try:
        store.get_job(job_id, project)
    except NotFoundError:
        return False
    return True
