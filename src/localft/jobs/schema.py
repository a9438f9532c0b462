"""Tables and typed records of the job store: files, jobs, events, checkpoints, fine-tuned models.

Every table has an integer `seq` (insertion order, the stable sort key of cursor pagination) and the public
string `id`. JSON-shaped columns are SQLAlchemy `JSON`, which is TEXT on SQLite and JSON on PostgreSQL.
Status and level strings copy OpenAI's literals; `paused` is ours (OpenAI's enum has no name for it).
Files, jobs and fine-tuned models carry the `project` of the API key that made them (NULL: made without one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, Column, Float, Integer, MetaData, String, Table, Text

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
EventType = Literal["message", "metrics"]
EventLevel = Literal["info", "warn", "error"]

metadata = MetaData()


def _seq() -> Column[int]:
    return Column("seq", Integer, primary_key=True, autoincrement=True)


schema_migrations = Table(
    "localft_migrations",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("applied_at", BigInteger, nullable=False),
)

files = Table(
    "localft_files",
    metadata,
    _seq(),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("filename", String(512), nullable=False),
    Column("purpose", String(64), nullable=False, index=True),
    Column("status", String(32), nullable=False),
    Column("storage_name", String(128), nullable=False),
    Column("project", String(64), index=True),
)

jobs = Table(
    "localft_jobs",
    metadata,
    _seq(),
    Column("id", String(64), unique=True, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("model", String(512), nullable=False),
    Column("base_model", String(1024), nullable=False),
    Column("training_file", String(64), nullable=False),
    Column("validation_file", String(64)),
    Column("hyperparameters", JSON, nullable=False),
    Column("method", JSON, nullable=False),
    Column("suffix", String(64)),
    Column("seed", BigInteger, nullable=False),
    Column("metadata", JSON),
    Column("organization_id", String(128), nullable=False),
    Column("status", String(32), nullable=False, index=True),
    Column("error", JSON),
    Column("model_name", String(512), nullable=False),
    Column("fine_tuned_model", String(512)),
    Column("finished_at", BigInteger),
    Column("trained_tokens", BigInteger),
    Column("estimated_finish", BigInteger),
    Column("result_files", JSON, nullable=False),
    Column("worker_id", String(256)),
    Column("lease_expires_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("project", String(64), index=True),
)

events = Table(
    "localft_events",
    metadata,
    _seq(),
    Column("id", String(64), unique=True, nullable=False),
    Column("job_id", String(64), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("level", String(16), nullable=False),
    Column("type", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSON),
)

checkpoints = Table(
    "localft_checkpoints",
    metadata,
    _seq(),
    Column("id", String(64), unique=True, nullable=False),
    Column("job_id", String(64), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("step_number", Integer, nullable=False),
    Column("model_id", String(600), unique=True, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("path", String(1024), nullable=False),
)

models = Table(
    "localft_models",
    metadata,
    _seq(),
    Column("id", String(600), unique=True, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("owned_by", String(128), nullable=False),
    Column("job_id", String(64), nullable=False),
    Column("base_model", String(1024), nullable=False),
    Column("path", String(1024), nullable=False),
    Column("project", String(64), index=True),
)

workers = Table(
    "localft_workers",
    metadata,
    _seq(),
    Column("id", String(256), unique=True, nullable=False),
    Column("host", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    Column("lease_seconds", Float, nullable=False),
    Column("job_id", String(64)),
)

meta = Table(
    "localft_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass(frozen=True)
class FileRecord:
    id: str
    created_at: int
    bytes: int
    filename: str
    purpose: str
    status: str
    storage_name: str
    """Name of the blob under settings.files_dir; generated, never taken from the upload."""
    project: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    created_at: int
    model: str
    """The model the caller asked for (an alias, a built-in name, a folder or an `ft:` id)."""
    base_model: str
    """What training loads: a built-in name or a local folder."""
    training_file: str
    validation_file: str | None
    hyperparameters: dict[str, Any]
    """As requested ("auto" allowed) until training resolves them, then the resolved values."""
    method: dict[str, Any]
    suffix: str | None
    seed: int
    metadata: dict[str, str] | None
    organization_id: str
    status: JobStatus
    error: dict[str, Any] | None
    model_name: str
    """The fine-tuned model id this job will create; checkpoint ids extend it."""
    fine_tuned_model: str | None
    finished_at: int | None
    trained_tokens: int | None
    estimated_finish: int | None
    result_files: list[str] = field(default_factory=list)
    worker_id: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    """Claims of this job; a claim that ends in a graceful stop is given back."""
    project: str | None = None


@dataclass(frozen=True)
class EventRecord:
    id: str
    job_id: str
    created_at: int
    level: EventLevel
    type: EventType
    message: str
    data: dict[str, Any] | None


@dataclass(frozen=True)
class CheckpointRecord:
    id: str
    job_id: str
    created_at: int
    step_number: int
    model_id: str
    metrics: dict[str, Any]
    path: str
    """Checkpoint folder, relative to settings.home."""


@dataclass(frozen=True)
class ModelRecord:
    id: str
    created_at: int
    owned_by: str
    job_id: str
    base_model: str
    path: str
    """Weights folder, relative to settings.home."""
    project: str | None = None


@dataclass(frozen=True)
class WorkerRecord:
    """A worker process as it last reported itself; live while `seen_at` is within its lease."""

    id: str
    host: str
    pid: int
    started_at: float
    seen_at: float
    lease_seconds: float
    job_id: str | None
