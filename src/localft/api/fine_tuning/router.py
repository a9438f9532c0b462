"""Routes of `/v1/fine_tuning/jobs`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from localft.api.auth import caller_of
from localft.api.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobCreate,
)
from localft.api.fine_tuning.service import FineTuningService
from localft.api.protocol import CursorPage

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning"])


def _service(request: Request) -> FineTuningService:
    service: FineTuningService = request.app.state.fine_tuning
    return service


@router.post("", response_model=FineTuningJob)
def create_job(request: Request, body: JobCreate, background: BackgroundTasks) -> FineTuningJob:
    """Create a job; it answers at once with `validating_files`, and the files are checked right after."""
    service = _service(request)
    job = service.create(body, caller_of(request).project)
    background.add_task(service.validate, job.id)
    return job


@router.get("", response_model=CursorPage[FineTuningJob])
def list_jobs(
    request: Request, after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> CursorPage[FineTuningJob]:
    """Newest first. Filter with `metadata[key]=value` query parameters (all must match)."""
    metadata = {
        key[len("metadata[") : -1]: value
        for key, value in request.query_params.items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    return _service(request).list(after, limit, metadata, caller_of(request).scope)


@router.get("/{job_id}", response_model=FineTuningJob)
def retrieve_job(request: Request, job_id: str) -> FineTuningJob:
    return _service(request).retrieve(job_id, caller_of(request).scope)


@router.post("/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(request: Request, job_id: str) -> FineTuningJob:
    """Cancel; a running job stops training within seconds."""
    return _service(request).cancel(job_id, caller_of(request).scope)


@router.post("/{job_id}/pause", response_model=FineTuningJob)
def pause_job(request: Request, job_id: str) -> FineTuningJob:
    """Pause (status `paused`); resuming continues from the newest checkpoint."""
    return _service(request).pause(job_id, caller_of(request).scope)


@router.post("/{job_id}/resume", response_model=FineTuningJob)
def resume_job(request: Request, job_id: str) -> FineTuningJob:
    return _service(request).resume(job_id, caller_of(request).scope)


@router.get("/{job_id}/events", response_model=CursorPage[FineTuningJobEvent])
def list_events(
    request: Request, job_id: str, after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> CursorPage[FineTuningJobEvent]:
    """Newest first; `after` is the id of the last event of the previous page."""
    return _service(request).events(job_id, after, limit, caller_of(request).scope)


@router.get("/{job_id}/checkpoints", response_model=CursorPage[FineTuningJobCheckpoint])
def list_checkpoints(
    request: Request, job_id: str, after: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 10
) -> CursorPage[FineTuningJobCheckpoint]:
    """The kept checkpoints (one per epoch, the newest 3), newest first; each is usable as a model."""
    return _service(request).checkpoints(job_id, after, limit, caller_of(request).scope)
