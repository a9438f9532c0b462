"""The job store: files, jobs, events, checkpoints and fine-tuned models in SQLite (WAL) or PostgreSQL.

SQLAlchemy Core only; no torch, no HTTP. Every state change of a job is a compare-and-set
(`UPDATE ... WHERE id = :id AND status IN (...)`) whose affected row count says who won, so a cancel racing a
worker's "succeeded", or two workers claiming the same job, always end with exactly one winner.

Workers hold a lease on a running job and renew it with heartbeats. A job whose lease ran out belongs to a worker
that died; `claim_next` hands it to the next worker, which resumes it from its last checkpoint. Leases, worker
sightings and event times are read from the database's clock (`db_now`), never a worker's: workers on machines
whose clocks disagree still agree on whose lease has run out.

Lookups and lists take a `project`: None sees every project (admin keys, no keys), a name sees only its own rows,
and another project's id reads as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Engine, Float, Row, Table, create_engine, event, func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from localft import ids
from localft.errors import NotFoundError, StoreError
from localft.jobs import schema
from localft.jobs.migrations import migrate
from localft.jobs.schema import (
    FINAL_STATUSES,
    CheckpointRecord,
    EventLevel,
    EventRecord,
    EventType,
    FileRecord,
    JobRecord,
    JobStatus,
    ModelRecord,
    WorkerRecord,
)

T = TypeVar("T")


class db_now(FunctionElement[float]):
    """The database's clock, in fractional seconds since the epoch."""

    type = Float()
    inherit_cache = True


class db_seconds(FunctionElement[int]):
    """The database's clock, in whole seconds since the epoch (what `created_at` columns hold)."""

    type = BigInteger()
    inherit_cache = True


@compiles(db_now)
def _sqlite_now(_element: db_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _postgres_now(_element: db_now, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


@compiles(db_seconds)
def _sqlite_seconds(_element: db_seconds, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CAST(strftime('%s', 'now') AS INTEGER)"


@compiles(db_seconds, "postgresql")
def _postgres_seconds(_element: db_seconds, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp())) AS BIGINT)"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One cursor page: the items and whether more follow the last one."""

    data: list[T]
    has_more: bool


def _record(cls: type[T], row: Row[Any]) -> T:
    mapping = row._mapping
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})  # type: ignore[arg-type]


def _in_project(table: Table, project: str | None) -> list[ColumnElement[bool]]:
    """The condition that keeps a project's rows (none: every row)."""
    return [] if project is None else [table.c.project == project]


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

    def now(self) -> float:
        """The database's clock (seconds since the epoch), the one every process agrees on."""
        with self.engine.connect() as conn:
            return float(conn.execute(select(db_now())).scalar_one())

    # --- files ------------------------------------------------------------------------------------------------

    def add_file(self, record: FileRecord) -> None:
        self._insert(schema.files, record)

    def get_file(self, file_id: str, project: str | None = None) -> FileRecord:
        table = schema.files
        found = self._get(table, FileRecord, table.c.id == file_id, *_in_project(table, project))
        if found is None:
            raise NotFoundError(f"No such File object: {file_id}", param="file_id", code="file_not_found")
        return found

    def list_files(
        self,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10_000,
        newest_first: bool = True,
        project: str | None = None,
    ) -> Page[FileRecord]:
        where = [schema.files.c.purpose == purpose] if purpose else []
        return self._page(
            schema.files, FileRecord, where + _in_project(schema.files, project), after, limit, newest_first
        )

    def delete_file(self, file_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(schema.files.delete().where(schema.files.c.id == file_id))

    def delete_unused_file(self, file_id: str) -> JobRecord | None:
        """Delete a file's row unless a job that has not ended reads it; that job, when one does."""
        jobs = schema.jobs
        with self.engine.begin() as conn:
            row = conn.execute(
                select(jobs)
                .where(
                    (jobs.c.training_file == file_id) | (jobs.c.validation_file == file_id),
                    jobs.c.status.not_in(list(FINAL_STATUSES)),
                )
                .order_by(jobs.c.seq)
                .limit(1)
            ).first()
            if row is not None:
                return _record(JobRecord, row)
            conn.execute(schema.files.delete().where(schema.files.c.id == file_id))
        return None

    # --- jobs -------------------------------------------------------------------------------------------------

    def add_job(self, record: JobRecord, messages: Iterable[str] = ()) -> None:
        """Insert a job and its first events in one transaction, so no job exists without its history."""
        with self.engine.begin() as conn:
            conn.execute(schema.jobs.insert().values(**_values(record)))
            for message in messages:
                conn.execute(schema.events.insert().values(**_event_values(record.id, message, "info", "message")))

    def get_job(self, job_id: str, project: str | None = None) -> JobRecord:
        table = schema.jobs
        found = self._get(table, JobRecord, table.c.id == job_id, *_in_project(table, project))
        if found is None:
            raise NotFoundError(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id", code="not_found")
        return found

    def list_jobs(
        self,
        *,
        after: str | None = None,
        limit: int = 20,
        metadata: dict[str, str] | None = None,
        project: str | None = None,
    ) -> Page[JobRecord]:
        where = _in_project(schema.jobs, project)
        if not metadata:
            return self._page(schema.jobs, JobRecord, where, after, limit, True)
        # Metadata is a small JSON object; filter in Python so SQLite and PostgreSQL agree on semantics.
        matches: list[JobRecord] = []
        cursor = after
        while True:
            page = self._page(schema.jobs, JobRecord, where, cursor, 500, True)
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
        lapsed = table.c.lease_expires_at < db_now()
        with self.engine.connect() as conn:
            candidates = conn.execute(
                select(table.c.id, table.c.status, table.c.worker_id)
                .where((table.c.status == "queued") | ((table.c.status == "running") & lapsed))
                .order_by(table.c.seq)
                .limit(10)
            ).all()
        for job_id, status, previous_worker in candidates:
            if self._claim(job_id, status, previous_worker, worker_id, lease_seconds):
                return self.get_job(job_id)
        return None

    def claim(self, job_id: str, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Atomically take this job if it is queued, or running under a lease that ran out (a Ray task that was
        given it: `localft.jobs.ray_executor`); None when it is neither."""
        table = schema.jobs
        with self.engine.connect() as conn:
            row = conn.execute(select(table.c.status, table.c.worker_id).where(table.c.id == job_id)).first()
        if row is None or not self._claim(job_id, row.status, row.worker_id, worker_id, lease_seconds):
            return None
        return self.get_job(job_id)

    def _claim(
        self, job_id: str, status: str, previous_worker: str | None, worker_id: str, lease_seconds: float
    ) -> bool:
        """Take the job from `status` (a running job only where its lease ran out, on the database's clock)."""
        table = schema.jobs
        if status not in ("queued", "running"):
            return False
        stale = status == "running"
        with self.engine.begin() as conn:
            guard = [table.c.id == job_id, table.c.status == status]
            if stale:
                guard.append(table.c.lease_expires_at < db_now())
            won = (
                conn.execute(
                    update(table)
                    .where(*guard)
                    .values(
                        status="running",
                        worker_id=worker_id,
                        lease_expires_at=db_now() + lease_seconds,
                        attempts=table.c.attempts + 1,
                    )
                ).rowcount
                == 1
            )
            if won and stale:
                message = f"Worker {previous_worker} stopped while running this job; taken over by {worker_id}"
                conn.execute(schema.events.insert().values(**_event_values(job_id, message, "warn", "message")))
        return won

    def give_back(self, job_id: str, worker_id: str, message: str) -> bool:
        """Put a running job back in the queue because its worker is stopping on purpose. The claim is given back
        too (`attempts` counts crashes, and a clean stop is none), so restarts never use up a job's attempts."""
        table = schema.jobs
        return self.transition(
            job_id,
            expect=["running"],
            held_by=worker_id,
            message=message,
            status="queued",
            worker_id=None,
            lease_expires_at=None,
            attempts=table.c.attempts - 1,
        )

    def heartbeat(self, job_id: str, worker_id: str, lease_seconds: float) -> bool:
        """Renew the lease; False when the job is no longer this worker's running job (cancelled, paused, lost)."""
        return self.transition(job_id, expect=["running"], held_by=worker_id, lease_expires_at=db_now() + lease_seconds)

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

    def last_logged_step(self, job_id: str) -> int:
        """The highest step a metrics event of the job reports (0 when none): a resumed run re-runs the steps
        after its checkpoint, and those already have their event."""
        return max((int((event.data or {}).get("step", 0)) for event in self.metrics_events(job_id)), default=0)

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

    def get_model(self, model_id: str, project: str | None = None) -> ModelRecord | None:
        table = schema.models
        return self._get(table, ModelRecord, table.c.id == model_id, *_in_project(table, project))

    def list_models(self, project: str | None = None) -> list[ModelRecord]:
        table = schema.models
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(*_in_project(table, project)).order_by(table.c.seq)).all()
        return [_record(ModelRecord, row) for row in rows]

    def base_models_used(self, project: str | None = None) -> list[str]:
        """The distinct base models the project's jobs were asked to train, in first-use order."""
        table = schema.jobs
        query = select(table.c.base_model).where(*_in_project(table, project)).group_by(table.c.base_model)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(func.min(table.c.seq))).all()
        return [row[0] for row in rows]

    def delete_model(self, model: ModelRecord, message: str) -> list[CheckpointRecord]:
        """Delete a fine-tuned model with its job's checkpoints (the same weights, served under other ids), and
        clear the job's `fine_tuned_model`, in one transaction; returns the checkpoints whose folders can go."""
        checkpoints = self.checkpoints_of(model.job_id)
        with self.engine.begin() as conn:
            if conn.execute(schema.models.delete().where(schema.models.c.id == model.id)).rowcount != 1:
                return []
            conn.execute(schema.checkpoints.delete().where(schema.checkpoints.c.job_id == model.job_id))
            jobs = schema.jobs
            conn.execute(
                update(jobs)
                .where(jobs.c.id == model.job_id, jobs.c.fine_tuned_model == model.id)
                .values(fine_tuned_model=None)
            )
            conn.execute(schema.events.insert().values(**_event_values(model.job_id, message, "info", "message")))
        return checkpoints

    # --- workers ----------------------------------------------------------------------------------------------

    def worker_seen(self, worker_id: str, *, host: str, pid: int, lease_seconds: float, job_id: str | None) -> None:
        """Record that a worker is alive (and what it runs), adding it on its first report."""
        table = schema.workers
        values = {"seen_at": db_now(), "lease_seconds": lease_seconds, "job_id": job_id}
        with self.engine.begin() as conn:
            if conn.execute(update(table).where(table.c.id == worker_id).values(**values)).rowcount == 1:
                return
            try:
                with conn.begin_nested():
                    conn.execute(table.insert().values(id=worker_id, host=host, pid=pid, started_at=db_now(), **values))
            except IntegrityError:  # reported twice at once (two threads of one worker): either row is right
                pass

    def worker_gone(self, worker_id: str) -> None:
        """A worker that stops cleanly takes itself off the list."""
        with self.engine.begin() as conn:
            conn.execute(schema.workers.delete().where(schema.workers.c.id == worker_id))

    def live_workers(self) -> list[WorkerRecord]:
        """Workers heard from within their lease, oldest first; longer-silent ones are forgotten here too."""
        table = schema.workers
        silent = table.c.seen_at + table.c.lease_seconds < db_now()
        with self.engine.begin() as conn:
            conn.execute(table.delete().where(silent))
            rows = conn.execute(select(table).order_by(table.c.seq)).all()
        return [_record(WorkerRecord, row) for row in rows]

    # --- installation facts -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == key)).scalar()
        return None if value is None else str(value)

    def set_meta_once(self, key: str, value: str) -> str:
        """Store `value` under `key` unless one is there already; returns the value that is stored now."""
        try:
            with self.engine.begin() as conn:
                conn.execute(schema.meta.insert().values(key=key, value=value))
        except IntegrityError:  # another process stored one first: theirs stands
            pass
        stored = self.get_meta(key)
        assert stored is not None
        return stored

    # --- helpers ----------------------------------------------------------------------------------------------

    def _insert(self, table: Table, record: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(table.insert().values(**_values(record)))

    def _get(self, table: Table, cls: type[T], *conditions: ColumnElement[bool]) -> T | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(table).where(*conditions)).first()
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
                cursor = conn.execute(select(table.c.seq).where(table.c.id == after, *where)).scalar()
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
        "created_at": db_seconds(),
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
