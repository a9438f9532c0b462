"""The domain exception tree. No HTTP status codes here: `api/errors.py` maps these to responses.

LocalftError
├── NotFoundError            a file, job, model or checkpoint id that does not exist
├── InvalidRequestError      bad parameters from a caller (names the field in `param`)
│   └── ConflictError        the request is valid but the object's state forbids it (cancel a finished job)
├── DataValidationError      fine-tuning data that fails validation (carries the report's first errors)
├── ModelError               a model that cannot be found, fetched or loaded
├── TrainingError            training failed for a reason that is not the data's fault
│   ├── TrainingCancelled    the sink asked training to stop (cancel or pause)
│   └── TrainingInterrupted  a process or machine training the job was lost; the job resumes from its checkpoint
└── StoreError               the job store could not do what was asked
"""

from __future__ import annotations


class LocalftError(Exception):
    """Base of every error localft raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class NotFoundError(LocalftError):
    """An id that names nothing."""


class InvalidRequestError(LocalftError):
    """A caller's parameters are wrong; `param` names the field and the message says the fix."""


class ConflictError(InvalidRequestError):
    """Valid request, but the object's current state does not allow it."""


class DataValidationError(LocalftError):
    """Fine-tuning data failed validation."""


class ModelError(LocalftError):
    """A model could not be resolved, fetched or loaded."""


class TrainingError(LocalftError):
    """Training failed for a reason other than bad data."""


class TrainingCancelled(TrainingError):
    """Training stopped because it was asked to (cancel or pause)."""


class TrainingInterrupted(TrainingError):
    """A process or a machine that trained the job was lost (killed, or its node died): not the job's fault, so the
    job goes back to the queue and resumes from its newest checkpoint."""


class StoreError(LocalftError):
    """The job store failed."""
