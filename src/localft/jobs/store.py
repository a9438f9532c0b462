"""The job store: files, jobs, events, checkpoints and fine-tuned models in SQLite (WAL) or PostgreSQL.

SQLAlchemy Core only; no torch, no HTTP. Every state change of a job is a compare-and-set
(`UPDATE ... WHERE id = :id AND status IN (...)`) whose affected row count says who won, so a cancel racing a
worker's "succeeded", or two workers claiming the same job, always end with exactly one winner.

Workers hold a lease on a running job and renew it with heartbeats. A job whose lease ran out belongs to a worker
that died; `claim_next` hands it to the next worker, which resumes it from its last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine, Row, Table, create_engine, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from localft import ids
from localft.errors import NotFoundError, StoreError
from localft.jobs import schema
from localft.jobs.migrations import migrate
from localft.jobs.schema import (
    CheckpointRecord,
    EventLevel,
    EventRecord,
    EventType,
    FileRecord,
    JobRecord,
    JobStatus,
    ModelRecord,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One cursor page: the items and whether more follow the last one."""

    data: list[T]
    has_more: bool


def _record(cls: type[T], row: Row[Any]) -> T:
    mapping = row._mapping
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def _now() -> int:
    return int(time.time())


class Store:
    """One database. Thread-safe: every method opens its own short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and apply pending migrations."""
        try:
            engine = _make_engine(url)
            migrate(engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot open the database {make_url(url).render_as_string()}: {exc}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- files ------------------------------------------------------------------------------------------------

    def add_file(self, record: FileRecord) -> None:
        self._insert(schema.files, record)

    def get_file(self, file_id: str) -> FileRecord:
        found = self._get(schema.files, FileRecord, schema.files.c.id == file_id)
        if found is None:
            raise NotFoundError(f"No such File object: {file_id}", param="file_id", code="file_not_found")
        return found

    def list_files(
        self, *, purpose: str | None = None, after: str | None = None, limit: int = 10_000, newest_first: bool = True
    ) -> Page[FileRecord]:
        where = [schema.files.c.purpose == purpose] if purpose else []
        return self._page(schema.files, FileRecord, where, after, limit, newest_first)

    def delete_file(self, file_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(schema.files.delete().where(schema.files.c.id == file_id))

    # --- jobs -------------------------------------------------------------------------------------------------

    def add_job(self, record: JobRecord, messages: Iterable[str] = ()) -> None:
        """Insert a job and its first events in one transaction, so no job exists without its history."""
        with self.engine.begin() as conn:
            conn.execute(schema.jobs.insert().values(**_values(record)))
            for message in messages:
                conn.execute(schema.events.insert().values(**_event_values(record.id, message, "info", "message")))

    def get_job(self, job_id: str) -> JobRecord:
        found = self._get(schema.jobs, JobRecord, schema.jobs.c.id == job_id)
        if found is None:
            raise NotFoundError(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="not_found")
        return found

    def list_jobs(
        self, *, after: str | None = None, limit: int = 20, metadata: dict[str, str] | None = None
    ) -> Page[JobRecord]:
        if not metadata:
            return self._page(schema.jobs, JobRecord, [], after, limit, True)
        # Metadata is a small JSON object; filter in Python so SQLite and PostgreSQL agree on semantics.
        matches: list[JobRecord] = []
        cursor = after
        while True:
            page = self._page(schema.jobs, JobRecord, [], cursor, 500, True)
            for job in page.data:
                if all((job.metadata or {}).get(k) == v for k, v in metadata.items()):
                    matches.append(job)
                    if len(matches) > limit:
                        return Page(matches[:limit], True)
            if not page.has_more or not page.data:
                return Page(matches, False)
            cursor = page.data[-1].id

    def transition(
        self,
        job_id: str,
        *,
        expect: Iterable[JobStatus] | None = None,
        held_by: str | None = None,
        message: str | None = None,
        level: EventLevel = "info",
        **values: Any,
    ) -> bool:
        """Set `values` on a job if its status is in `expect` (and its worker is `held_by`, when given).

        Returns whether the update happened; `message` becomes an event only if it did.
        """
        table = schema.jobs
        condition: list[ColumnElement[bool]] = [table.c.id == job_id]
        if expect is not None:
            condition.append(table.c.status.in_(list(expect)))
        if held_by is not None:
            condition.append(table.c.worker_id == held_by)
        with self.engine.begin() as conn:
            changed = conn.execute(update(table).where(*condition).values(**values)).rowcount == 1
            if changed and message:
                conn.execute(schema.events.insert().values(**_event_values(job_id, message, level, "message")))
        return changed

    def complete_job(
        self, job_id: str, worker_id: str, model: ModelRecord, messages: Sequence[str], **values: Any
    ) -> bool:
        """Mark a job succeeded and register its model in one transaction, if the job is still this worker's."""
        table = schema.jobs
        with self.engine.begin() as conn:
            won = (
                conn.execute(
                    update(table)
                    .where(table.c.id == job_id, table.c.status == "running", table.c.worker_id == worker_id)
                    .values(status="succeeded", **values)
                ).rowcount
                == 1
            )
            if won:
                conn.execute(schema.models.insert().values(**_values(model)))
                for message in messages:
                    conn.execute(schema.events.insert().values(**_event_values(job_id, message, "info", "message")))
        return won

    def claim_next(self, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Atomically take the oldest queued job, or a running one whose worker stopped renewing its lease."""
        table = schema.jobs
        now = time.time()
        with self.engine.connect() as conn:
            candidates = conn.execute(
                select(table.c.id, table.c.status, table.c.worker_id)
                .where(
                    (table.c.status == "queued") | ((table.c.status == "running") & (table.c.lease_expires_at < now))
                )
                .order_by(table.c.seq)
                .limit(10)
            ).all()
        for job_id, status, previous_worker in candidates:
            if self._claim(job_id, status, previous_worker, worker_id, lease_seconds, now):
                return self.get_job(job_id)
        return None

    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Atomically take this job if it is queued, or running under a lease that ran out (a Ray task that was
        given it: `localft.jobs.ray_executor`); None when it is neither."""
        table = schema.jobs
        now = time.time()
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.status, table.c.worker_id).where(table.c.id == job_id)).first()
        if row is None or not self._claim(job_id, row.status, row.worker_id, worker_id, lease_seconds, now):
            return None
        return self.get_job(job_id)

    def _claim(
        self, job_id: str, status: str, previous_worker: str | None, worker_id: str, lease_seconds: float, now: float
    ) -> bool:
        table = schema.jobs
        if status not in ("queued", "running"):
            return False
        stale = status == "running"
        with self.engine.begin() as conn:
            guard = [table.c.id == job_id, table.c.status == status]
            if stale:
                guard.append(table.c.lease_expires_at < now)
            won = (
                conn.execute(
                    update(table)
                    .where(*guard)
                    .values(
                        status="running",
                        worker_id=worker_id,
                        lease_expires_at=now + lease_seconds,
                        attempts=table.c.attempts + 1,
                    )
                ).rowcount
                == 1
            )
            if won and stale:
                message = f"Worker {previous_worker} stopped while running this job; taken over by {worker_id}"
                conn.execute(schema.events.insert().values(**_event_values(job_id, message, "warn", "message")))
        return won

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Renew the lease; False when the job is no longer this worker's running job (cancelled, paused, lost)."""
        return self.transition(
            job_id, expect=["running"], held_by=worker_id, lease_expires_at=time.time() + lease_seconds
        )

    def running_jobs(self) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.jobs).where(schema.jobs.c.status == "running")).all()
        return [_record(JobRecord, row) for row in rows]

    def expire_lease(self, job_id: str, worker_id: str) -> bool:
        """Mark a running job's lease as lapsed now (its worker is known dead), so the next claim takes it."""
        return self.transition(job_id, expect=["running"], held_by=worker_id, lease_expires_at=0.0)

    def jobs_with_status(self, status: JobStatus) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(schema.jobs).where(schema.jobs.c.status == status).order_by(schema.jobs.c.seq)
            ).all()
        return [_record(JobRecord, row) for row in rows]

    # --- events -----------------------------------------------------------------------------------------------

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: EventLevel = "info",
        type: EventType = "message",
        data: dict[str, Any] | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(schema.events.insert().values(**_event_values(job_id, message, level, type, data)))

    def list_events(self, job_id: str, *, after: str | None = None, limit: int = 20) -> Page[EventRecord]:
        """Newest first, like OpenAI; `after` is the id of the last event of the previous page."""
        return self._page(schema.events, EventRecord, [schema.events.c.job_id == job_id], after, limit, True)

    def metrics_events(self, job_id: str) -> list[EventRecord]:
        """All metrics events of a job, oldest first (the rows of its result file)."""
        table = schema.events
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table).where(table.c.job_id == job_id, table.c.type == "metrics").order_by(table.c.seq)
            ).all()
        return [_record(EventRecord, row) for row in rows]

    # --- checkpoints ------------------------------------------------------------------------------------------

    def add_checkpoint(self, record: CheckpointRecord, message: str) -> None:
        """Record a checkpoint; a step re-run after a crash replaces the record of the same step."""
        table = schema.checkpoints
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.model_id == record.model_id))
            conn.execute(table.insert().values(**_values(record)))
            conn.execute(schema.events.insert().values(**_event_values(record.job_id, message, "info", "message")))

    def list_checkpoints(self, job_id: str, *, after: str | None = None, limit: int = 10) -> Page[CheckpointRecord]:
        where = [schema.checkpoints.c.job_id == job_id]
        return self._page(schema.checkpoints, CheckpointRecord, where, after, limit, True)

    def checkpoints_of(self, job_id: str) -> list[CheckpointRecord]:
        """Every checkpoint of a job, highest step first."""
        table = schema.checkpoints
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table).where(table.c.job_id == job_id).order_by(table.c.step_number.desc(), table.c.seq.desc())
            ).all()
        return [_record(CheckpointRecord, row) for row in rows]

    def get_checkpoint_by_model(self, model_id: str) -> CheckpointRecord | None:
        return self._get(schema.checkpoints, CheckpointRecord, schema.checkpoints.c.model_id == model_id)

    def delete_checkpoints(self, checkpoint_ids: Sequence[str]) -> None:
        if checkpoint_ids:
            with self.engine.begin() as conn:
                conn.execute(schema.checkpoints.delete().where(schema.checkpoints.c.id.in_(list(checkpoint_ids))))

    # --- fine-tuned models ------------------------------------------------------------------------------------

    def add_model(self, record: ModelRecord) -> None:
        self._insert(schema.models, record)

    def get_model(self, model_id: str) -> ModelRecord | None:
        return self._get(schema.models, ModelRecord, schema.models.c.id == model_id)

    def list_models(self) -> list[ModelRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.models).order_by(schema.models.c.seq)).all()
        return [_record(ModelRecord, row) for row in rows]

    def delete_model(self, model_id: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(schema.models.delete().where(schema.models.c.id == model_id)).rowcount == 1

    # --- helpers ----------------------------------------------------------------------------------------------

    def _insert(self, table: Table, record: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert().values(**_values(record)))

    def _get(self, table: Table, cls: type[T], condition: ColumnElement[bool]) -> T | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(condition)).first()
        return None if row is None else _record(cls, row)

    def _page(
        self,
        table: Table,
        cls: type[T],
        where: list[ColumnElement[bool]],
        after: str | None,
        limit: int,
        newest_first: bool,
    ) -> Page[T]:
        with self.engine.connect() as conn:
            conditions = list(where)
            if after:
                cursor = conn.execute(select(table.c.seq).where(table.c.id == after)).scalar()
                if cursor is None:
                    # An unknown cursor is a caller error, not an empty page: a silent [] would end pagination.
                    raise NotFoundError(f"No such object for the 'after' cursor: {after}", param="after")
                conditions.append(table.c.seq < cursor if newest_first else table.c.seq > cursor)
            order = table.c.seq.desc() if newest_first else table.c.seq.asc()
            rows = conn.execute(select(table).where(*conditions).order_by(order).limit(limit + 1)).all()
        items = [_record(cls, row) for row in rows[:limit]]
        return Page(items, len(rows) > limit)


def _values(record: object) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}  # type: ignore[arg-type]


def _event_values(
    job_id: str, message: str, level: EventLevel, type: EventType, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": ids.event_id(),
        "job_id": job_id,
        "created_at": _now(),
        "level": level,
        "type": type,
        "message": message,
        "data": data,
    }


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, future=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions instead of pysqlite's implicit, deferred ones.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: read-then-write transactions (claims) cannot deadlock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
