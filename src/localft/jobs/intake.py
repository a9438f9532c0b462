"""File validation when a job starts: `validating_files` -> `queued`, or `failed` with OpenAI's error codes.

Uses the data team's `validate_file`, the same checks `localft validate` runs, so the CLI and the server never
disagree about a file. Runs right after the create request is answered (the API schedules it) and again on
start-up for any job a crash left in `validating_files`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from localft.jobs.files import FileStorage
from localft.jobs.schema import JobRecord

MIN_EXAMPLES = 10


def validate_job(storage: FileStorage, job: JobRecord) -> bool:
    """Validate a job's files and move it on; returns True when it was queued."""
    store = storage.store
    error: dict[str, Any] | None = None
    for role in ("training", "validation"):
        file_id = job.training_file if role == "training" else job.validation_file
        if file_id is None:
            continue
        try:
            path = storage.path(store.get_file(file_id))
        except Exception as exc:  # deleted after the job was created
            error = _error(role, "invalid_file", f"{role.capitalize()} file {file_id} is no longer available: {exc}")
            break
        try:
            error = check_file(path, role)
        except Exception as exc:  # a validator bug must fail this job, not leave it validating forever
            error = _error(role, "invalid_file", f"The {role} file could not be validated: {exc}")
        if error is not None:
            break
    if error is not None:
        store.transition(
            job.id,
            expect=["validating_files"],
            status="failed",
            error=error,
            finished_at=_now(),
            message=f"Fine-tuning job failed: {error['message']}",
            level="error",
        )
        return False
    return store.transition(
        job.id, expect=["validating_files"], status="queued", message="Files validated, moving job to queued state"
    )


def check_file(path: Path, role: Literal["training", "validation"]) -> dict[str, Any] | None:
    """OpenAI's job `error` object for the first problem of a file, or None when it is valid."""
    from localft.data.validate import validate_file

    report = validate_file(path, min_examples=MIN_EXAMPLES if role == "training" else 1)
    if report.ok:
        return None
    first = report.errors[0]
    if first.code == "invalid_n_examples":
        return _error(role, "invalid_n_examples", first.message)
    more = f" ({len(report.errors) - 1} more errors)" if len(report.errors) > 1 else ""
    # str(problem) reads "line N: what is wrong (check). Fix: what to do".
    return _error(role, f"invalid_{role}_file", f"The job failed due to an invalid {role} file: {first}{more}")


def _error(role: str, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": f"{role}_file"}


def _now() -> int:
    return int(time.time())
