"""Fine-tuning job logic: checking a create request, the job's state machine as seen from the API, pages.

Creating a job answers at once with `validating_files`; the files are checked right after the response
(`validate`), and the worker takes the job from `queued`. Cancel and pause only change the status: the worker's
heartbeat notices within seconds and stops training at the next step. A job belongs to the project of the key that
made it and reads only that project's files; every method takes the caller's project (`None`: all projects).
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any

from localft import ids
from localft.api.fine_tuning.protocol import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobCreate,
)
from localft.api.protocol import CursorPage
from localft.base_models import is_known, list_base_models, not_installed, resolve_alias
from localft.errors import ConflictError, InvalidRequestError, NotFoundError
from localft.jobs.files import FileStorage
from localft.jobs.intake import validate_job
from localft.jobs.registry import fine_tuned_model_name
from localft.jobs.retention import release_job_folder
from localft.jobs.schema import FileRecord, JobRecord, JobStatus
from localft.jobs.store import Store
from localft.training.hparams import Hyperparameters

_SUFFIX = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ACTIVE: tuple[JobStatus, ...] = ("validating_files", "queued", "running", "paused")


class FineTuningService:
    def __init__(self, store: Store, storage: FileStorage, organization: str, jobs_dir: Path) -> None:
        self.store = store
        self.storage = storage
        self.organization = organization
        self.jobs_dir = jobs_dir

    def create(self, request: JobCreate, project: str | None) -> FineTuningJob:
        base_model = self._base_model(request.model)
        training = self._file(request.training_file, "training_file", project)
        validation = (
            self._file(request.validation_file, "validation_file", project) if request.validation_file else None
        )
        hyperparameters = self._hyperparameters(request)
        if request.suffix is not None and not _SUFFIX.match(request.suffix):
            raise InvalidRequestError(
                f"Invalid suffix {request.suffix!r}: use 1-64 letters, digits, '.', '_' or '-'.", param="suffix"
            )
        _check_metadata(request.metadata)
        if request.integrations:
            raise InvalidRequestError(
                "Integrations (Weights & Biases) are not supported by localft; remove 'integrations'.",
                param="integrations",
            )
        job = JobRecord(
            id=ids.job_id(),
            created_at=int(time.time()),
            model=base_model,
            base_model=base_model,
            training_file=training.id,
            validation_file=validation.id if validation else None,
            hyperparameters=hyperparameters.to_dict(),
            method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters.to_dict()}},
            suffix=request.suffix,
            seed=request.seed if request.seed is not None else secrets.randbelow(2**31),
            metadata=request.metadata,
            organization_id=self.organization,
            status="validating_files",
            error=None,
            model_name=fine_tuned_model_name(base_model, self.organization, request.suffix),
            fine_tuned_model=None,
            finished_at=None,
            trained_tokens=None,
            estimated_finish=None,
            result_files=[],
            project=project,
        )
        validating = f"Validating training file: {training.id}"
        if validation:
            validating += f" and validation file: {validation.id}"
        self.store.add_job(job, [f"Created fine-tuning job: {job.id}", validating])
        return FineTuningJob.of(job)

    def validate(self, job_id: str) -> None:
        """Check the job's files now (called right after the create response is sent)."""
        validate_job(self.storage, self.store.get_job(job_id))

    def retrieve(self, job_id: str, project: str | None) -> FineTuningJob:
        return FineTuningJob.of(self.store.get_job(job_id, project))

    def list(
        self, after: str | None, limit: int, metadata: dict[str, str], project: str | None
    ) -> CursorPage[FineTuningJob]:
        page = self.store.list_jobs(after=after, limit=limit, metadata=metadata, project=project)
        return CursorPage[FineTuningJob].of([FineTuningJob.of(j) for j in page.data], page.has_more)

    def cancel(self, job_id: str, project: str | None) -> FineTuningJob:
        before = self.store.get_job(job_id, project).status
        job = self._move(
            job_id, _ACTIVE, "cancelled", "Fine-tuning job cancelled", project, finished_at=int(time.time())
        )
        if before != "running":  # a running job's worker tidies its folder once training has stopped
            release_job_folder(self.jobs_dir / job_id)
        return job

    def pause(self, job_id: str, project: str | None) -> FineTuningJob:
        return self._move(job_id, ("queued", "running"), "paused", "Fine-tuning job paused", project)

    def resume(self, job_id: str, project: str | None) -> FineTuningJob:
        # attempts counts crashes; a deliberate pause/resume must not use them up.
        return self._move(job_id, ("paused",), "queued", "Fine-tuning job resumed", project, attempts=0)

    def events(self, job_id: str, after: str | None, limit: int, project: str | None) -> CursorPage[FineTuningJobEvent]:
        self.store.get_job(job_id, project)
        page = self.store.list_events(job_id, after=after, limit=limit)
        return CursorPage[FineTuningJobEvent].of([FineTuningJobEvent.of(e) for e in page.data], page.has_more)

    def checkpoints(
        self, job_id: str, after: str | None, limit: int, project: str | None
    ) -> CursorPage[FineTuningJobCheckpoint]:
        self.store.get_job(job_id, project)
        page = self.store.list_checkpoints(job_id, after=after, limit=limit)
        return CursorPage[FineTuningJobCheckpoint].of([FineTuningJobCheckpoint.of(c) for c in page.data], page.has_more)

    # --- helpers ----------------------------------------------------------------------------------------------

    def _move(
        self,
        job_id: str,
        allowed: tuple[JobStatus, ...],
        status: JobStatus,
        message: str,
        project: str | None,
        **values: Any,
    ) -> FineTuningJob:
        job = self.store.get_job(job_id, project)
        moved = self.store.transition(
            job_id,
            expect=allowed,
            status=status,
            message=message,
            estimated_finish=None,
            **values,
        )
        if not moved:
            current = self.store.get_job(job_id).status
            raise ConflictError(
                f"Cannot move job {job.id} to '{status}': it is '{current}' (allowed from: {', '.join(allowed)}).",
                param="fine_tuning_job_id",
            )
        return self.retrieve(job_id, project)

    def _base_model(self, model: str) -> str:
        if model.startswith("ft:"):
            raise InvalidRequestError(
                f"Continuing from a fine-tuned model ({model}) is not supported yet: start from its base model.",
                param="model",
                code="model_not_available",
            )
        if not is_known(model):
            names = ", ".join(spec.name for spec in list_base_models())
            raise InvalidRequestError(
                f"Model {model} is not available for fine-tuning or does not exist. "
                f"Use a built-in model ({names}), an OpenAI alias such as gpt-4o-mini, or a local Hugging Face folder.",
                param="model",
                code="model_not_available",
            )
        missing = not_installed(model)
        if missing is not None:
            raise InvalidRequestError(missing, param="model", code="model_not_installed")
        return resolve_alias(model)

    def _file(self, file_id: str, param: str, project: str | None) -> FileRecord:
        try:
            record = self.store.get_file(file_id, project)
        except NotFoundError:
            raise InvalidRequestError(f"invalid {param}: {file_id}", param=param, code="file_not_found") from None
        if record.purpose != "fine-tune":
            raise InvalidRequestError(
                f"File {file_id} has purpose '{record.purpose}'; upload it with purpose 'fine-tune'.", param=param
            )
        return record

    @staticmethod
    def _hyperparameters(request: JobCreate) -> Hyperparameters:
        method = request.method.supervised if request.method else None
        chosen = method.hyperparameters if method and method.hyperparameters else request.hyperparameters
        return Hyperparameters.from_dict(chosen.model_dump(exclude_none=True) if chosen else None)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    if len(metadata) > 16:
        raise InvalidRequestError("metadata holds at most 16 key-value pairs.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequestError(
                f"metadata key {key[:20]!r}: keys are at most 64 characters, values at most 512.", param="metadata"
            )
