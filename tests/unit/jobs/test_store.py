"""The job store on SQLite and PostgreSQL: migrations, pages, compare-and-set transitions, claims and leases."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import sqlalchemy

from localft.errors import NotFoundError
from localft.jobs import migrations, schema
from localft.jobs.schema import FileRecord, JobRecord, ModelRecord
from localft.jobs.store import Store


def _file(n: int, purpose: str = "fine-tune") -> FileRecord:
    return FileRecord(
        id=f"file-{n:03d}", created_at=n, bytes=n, filename=f"f{n}.jsonl", purpose=purpose, status="processed",
        storage_name=f"file-{n:03d}",
    )  # fmt: skip


def _job(n: int, status: str = "queued", metadata: dict[str, str] | None = None) -> JobRecord:
    return JobRecord(
        id=f"ftjob-{n:03d}", created_at=n, model="m", base_model="m", training_file="file-1", validation_file=None,
        hyperparameters={"n_epochs": "auto"}, method={"type": "supervised"}, suffix=None, seed=1, metadata=metadata,
        organization_id="org", status=status, error=None, model_name=f"ft:m:org::{n:08d}",  # type: ignore[arg-type]
        fine_tuned_model=None, finished_at=None, trained_tokens=None, estimated_finish=None,
    )  # fmt: skip


def test_migrations_apply_once_in_order(db_url: str) -> None:
    first = Store.open(db_url)
    assert migrations.applied(first.engine) == [name for name, _ in migrations.MIGRATIONS]
    assert migrations.migrate(first.engine) == []  # a second open applies nothing
    first.close()
    second = Store.open(db_url)
    second.add_file(_file(1))
    assert second.get_file("file-001").filename == "f1.jsonl"
    second.close()


def test_a_database_from_before_projects_is_upgraded_in_place(db_url: str) -> None:
    """Tables as the first two migrations made them (no `project` columns, no workers): opening adds them, and the
    rows already there belong to no project, so only admin keys see them."""
    from sqlalchemy import MetaData, create_engine

    old = MetaData()
    for table in (schema.files, schema.jobs, schema.events, schema.checkpoints, schema.models):
        columns = [column.copy() for column in table.columns if column.name != "project"]
        sqlalchemy.Table(table.name, old, *columns)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        old.create_all(conn)
        schema.schema_migrations.create(conn)
        for name in ("m001_initial", "m002_event_order_index"):
            conn.execute(schema.schema_migrations.insert().values(name=name, applied_at=1))
        conn.execute(old.tables["localft_files"].insert().values(**{
            k: v for k, v in vars(_file(1)).items() if k != "project"
        }))  # fmt: skip
    engine.dispose()
    upgraded = Store.open(db_url)
    assert migrations.applied(upgraded.engine) == [name for name, _ in migrations.MIGRATIONS]
    assert upgraded.get_file("file-001").project is None
    with pytest.raises(NotFoundError):
        upgraded.get_file("file-001", project="teamA")
    upgraded.add_file(dataclasses.replace(_file(2), project="teamA"))
    assert [f.id for f in upgraded.list_files(project="teamA").data] == ["file-002"]
    upgraded.worker_seen("host:1:w", host="host", pid=1, lease_seconds=60, job_id=None)
    assert [w.id for w in upgraded.live_workers()] == ["host:1:w"]
    upgraded.close()


def test_file_pages_follow_cursor_in_both_orders(store: Store) -> None:
    for n in range(1, 8):
        store.add_file(_file(n, "fine-tune" if n % 2 else "evals"))
    page = store.list_files(limit=3)
    assert [f.id for f in page.data] == ["file-007", "file-006", "file-005"] and page.has_more
    page = store.list_files(limit=3, after="file-005")
    assert [f.id for f in page.data] == ["file-004", "file-003", "file-002"] and page.has_more
    page = store.list_files(limit=3, after="file-002")
    assert [f.id for f in page.data] == ["file-001"] and not page.has_more
    ascending = store.list_files(purpose="fine-tune", newest_first=False, limit=10)
    assert [f.id for f in ascending.data] == ["file-001", "file-003", "file-005", "file-007"]
    with pytest.raises(NotFoundError):
        store.list_files(after="file-999")


def test_job_list_filters_on_metadata(store: Store) -> None:
    for n in range(1, 6):
        store.add_job(_job(n, metadata={"team": "a" if n % 2 else "b"}), ["Created fine-tuning job"])
    page = store.list_jobs(metadata={"team": "a"}, limit=2)
    assert [j.id for j in page.data] == ["ftjob-005", "ftjob-003"] and page.has_more
    page = store.list_jobs(metadata={"team": "a"}, limit=2, after="ftjob-003")
    assert [j.id for j in page.data] == ["ftjob-001"] and not page.has_more
    assert store.list_jobs(metadata={"team": "zzz"}).data == []


def test_events_are_newest_first_and_paginate(store: Store) -> None:
    store.add_job(_job(1), ["first", "second"])
    for n in range(3):
        store.add_event("ftjob-001", f"Step {n}", type="metrics", data={"step": n})
    page = store.list_events("ftjob-001", limit=2)
    assert [e.message for e in page.data] == ["Step 2", "Step 1"] and page.has_more
    rest = store.list_events("ftjob-001", after=page.data[-1].id, limit=10)
    assert [e.message for e in rest.data] == ["Step 0", "second", "first"] and not rest.has_more
    assert [e.data for e in store.metrics_events("ftjob-001")] == [{"step": 0}, {"step": 1}, {"step": 2}]


def test_transition_is_compare_and_set(store: Store) -> None:
    store.add_job(_job(1, "running"))
    assert store.transition("ftjob-001", expect=["running"], status="cancelled", message="Fine-tuning job cancelled")
    # The worker's late "succeeded" loses: the job stays cancelled and no event is written for the loser.
    model = ModelRecord(id="ft:m:org::x", created_at=1, owned_by="org", job_id="ftjob-001", base_model="m", path="p")
    assert not store.complete_job("ftjob-001", "w1", model, ["New fine-tuned model created"])
    assert store.get_job("ftjob-001").status == "cancelled"
    assert store.get_model("ft:m:org::x") is None
    assert [e.message for e in store.list_events("ftjob-001").data] == ["Fine-tuning job cancelled"]


def test_concurrent_claims_take_each_job_exactly_once(store: Store) -> None:
    for n in range(1, 7):
        store.add_job(_job(n))
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def work(worker: str) -> None:
        while (job := store.claim_next(worker, lease_seconds=60)) is not None:
            with lock:
                claimed.append((job.id, worker))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job for job, _ in claimed) == [f"ftjob-{n:03d}" for n in range(1, 7)]
    for job_id, worker in claimed:
        job = store.get_job(job_id)
        assert (job.status, job.worker_id, job.attempts) == ("running", worker, 1)


def test_expired_lease_is_taken_over_with_an_event(store: Store) -> None:
    store.add_job(_job(1))
    first = store.claim_next("host:1:dead", lease_seconds=60)
    assert first is not None and first.worker_id == "host:1:dead"
    assert store.claim_next("host:2:alive", lease_seconds=60) is None  # lease still valid
    assert not store.heartbeat("ftjob-001", "someone-else", 60)
    assert store.heartbeat("ftjob-001", "host:1:dead", -1)  # its last renewal ran out a second ago
    taken = store.claim_next("host:2:alive", lease_seconds=60)
    assert taken is not None and taken.worker_id == "host:2:alive" and taken.attempts == 2
    assert not store.heartbeat("ftjob-001", "host:1:dead", 60)  # the old worker learns it lost the job
    assert store.heartbeat("ftjob-001", "host:2:alive", 60)
    messages = [e.message for e in store.list_events("ftjob-001").data]
    assert messages[0].startswith("Worker host:1:dead stopped while running this job")


def test_leases_and_event_times_follow_the_databases_clock_not_a_workers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose clock runs a minute ahead must not see a healthy job's lease as run out, nor date events by
    its own clock."""
    store.add_job(_job(1))
    assert store.claim_next("host:1:healthy", lease_seconds=30) is not None
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() + 60)  # this process is now the skewed worker
    assert store.claim_next("host:2:skewed", lease_seconds=30) is None
    assert store.get_job("ftjob-001").worker_id == "host:1:healthy"
    assert store.heartbeat("ftjob-001", "host:1:healthy", 30)
    store.add_event("ftjob-001", "logged by the skewed worker")
    logged = store.list_events("ftjob-001", limit=1).data[0]
    assert abs(logged.created_at - true_time()) < 30  # the database's time, not the skewed +60 s
    assert abs(store.now() - true_time()) < 30


def test_expire_lease_hands_a_dead_workers_job_over_now(store: Store) -> None:
    store.add_job(_job(1))
    assert store.claim_next("host:1:dead", lease_seconds=3600) is not None
    assert store.expire_lease("ftjob-001", "host:1:dead")
    taken = store.claim_next("host:2:new", lease_seconds=60)
    assert taken is not None and taken.id == "ftjob-001"
