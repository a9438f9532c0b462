"""Claiming one given job (what a Ray task does) and putting an interrupted job back in the queue."""

from __future__ import annotations

import json

from localft import ids
from localft.errors import TrainingInterrupted
from localft.jobs.files import FileStorage
from localft.jobs.intake import validate_job
from localft.jobs.schema import JobRecord
from localft.jobs.store import Store
from localft.jobs.worker import Worker
from localft.settings import Settings
from localft.training.interfaces import EventSink, TrainResult, TrainSpec


def _job(store: Store, status: str = "queued") -> JobRecord:
    job = JobRecord(
        id=ids.job_id(), created_at=1, model="m", base_model="m", training_file="file-x", validation_file=None,
        hyperparameters={}, method={}, suffix=None, seed=0, metadata=None, organization_id="org", status=status,
        error=None, model_name="ft:m:org::abcdefgh", fine_tuned_model=None, finished_at=None, trained_tokens=None,
        estimated_finish=None,
    )  # type: ignore[arg-type]  # fmt: skip
    store.add_job(job)
    return job


def test_a_queued_job_is_claimed_once(store: Store) -> None:
    job = _job(store)
    claimed = store.claim(job.id, "node-a:1:ray1", 30)
    assert claimed is not None and (claimed.status, claimed.worker_id, claimed.attempts) == (
        "running",
        "node-a:1:ray1",
        1,
    )
    assert store.claim(job.id, "node-b:2:ray2", 30) is None  # running under a live lease
    assert store.claim("ftjob-none", "node-b:2:ray2", 30) is None


def test_a_job_whose_lease_ran_out_is_taken_over_with_an_event(store: Store) -> None:
    job = _job(store)
    store.claim(job.id, "node-a:1:ray1", 30)
    assert store.expire_lease(job.id, "node-a:1:ray1")
    taken = store.claim(job.id, "node-b:2:ray2", 30)
    assert taken is not None and (taken.worker_id, taken.attempts) == ("node-b:2:ray2", 2)
    newest = store.list_events(job.id, limit=1).data[0]
    assert newest.message == "Worker node-a:1:ray1 stopped while running this job; taken over by node-b:2:ray2"


def test_paused_or_finished_jobs_are_not_claimed(store: Store) -> None:
    for status in ("paused", "succeeded", "cancelled", "validating_files"):
        assert store.claim(_job(store, status).id, "node-a:1:ray1", 30) is None


def test_an_interrupted_run_puts_the_job_back_in_the_queue(settings: Settings) -> None:
    store = Store.open(settings.db_url)
    storage = FileStorage(store, settings.files_dir)
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "positive"}]}
    upload = storage.save_bytes((json.dumps(line) + "\n").encode() * 10, filename="t.jsonl", purpose="fine-tune")
    job = JobRecord(
        id=ids.job_id(), created_at=1, model="m", base_model="m", training_file=upload.id, validation_file=None,
        hyperparameters={}, method={}, suffix=None, seed=0, metadata=None, organization_id="org",
        status="validating_files", error=None, model_name="ft:m:org::abcdefgh", fine_tuned_model=None,
        finished_at=None, trained_tokens=None, estimated_finish=None,
    )  # fmt: skip
    store.add_job(job)
    assert validate_job(storage, job)

    def interrupted(spec: TrainSpec, sink: EventSink) -> TrainResult:
        raise TrainingInterrupted("Data-parallel process 1 of 2 exited with code -9; its last lines:\n...")

    Worker(settings, store, poll_interval=0.01, train=interrupted).run_once()
    requeued = store.get_job(job.id)
    assert (requeued.status, requeued.worker_id, requeued.error) == ("queued", None, None)
    newest = store.list_events(job.id, limit=1).data[0]
    assert newest.level == "warn" and newest.message == (
        "Training was interrupted (Data-parallel process 1 of 2 exited with code -9): back in the queue, to resume "
        "from its checkpoint"
    )
    store.close()
