"""The worker's bookkeeping around a scripted trainer: events, checkpoints, result file, cancel, crash, shutdown.

The trainer here is a script that follows the engine's contract (training/interfaces.py) and writes real
checkpoint folders; the real engine runs in tests/api/test_training.py.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from localft import ids
from localft.errors import DataValidationError, TrainingCancelled
from localft.jobs.data_folder import MARKER, DataFolderMismatch, check_data_folder, mark_data_folder
from localft.jobs.files import FileStorage
from localft.jobs.intake import validate_job
from localft.jobs.schema import CheckpointRecord, JobRecord
from localft.jobs.store import Store
from localft.jobs.worker import MAX_ATTEMPTS, Worker
from localft.settings import Settings
from localft.training.checkpoint import STATE_FILE, CheckpointMeta, progress_dir, write_meta
from localft.training.interfaces import CheckpointInfo, EventSink, StepMetrics, TrainResult, TrainSpec


@dataclass
class ScriptedTrainer:
    """Trains `epochs` epochs of `steps_per_epoch` steps, checkpointing at each epoch end like the engine."""

    epochs: int = 4
    steps_per_epoch: int = 2
    fail_with: Exception | None = None
    wait_for_stop: threading.Event | None = None
    """When set, the trainer signals `started` and spins on should_stop() (a long-running job)."""
    started: threading.Event = field(default_factory=threading.Event)
    specs: list[TrainSpec] = field(default_factory=list)

    def __call__(self, spec: TrainSpec, sink: EventSink) -> TrainResult:
        self.specs.append(spec)
        if self.fail_with is not None:
            raise self.fail_with
        total = self.epochs * self.steps_per_epoch
        first = 1
        if spec.resume_from is not None:
            first = json.loads((spec.resume_from / "meta.json").read_text())["step"] + 1
        last = spec.output_dir
        for step in range(first, total + 1):
            if self.wait_for_stop is not None:
                self.started.set()
                while not sink.should_stop():
                    time.sleep(0.01)
            if sink.should_stop():
                raise TrainingCancelled("stopped")
            epoch = (step - 1) // self.steps_per_epoch + 1
            end = step % self.steps_per_epoch == 0
            metrics = StepMetrics(
                step=step, total_steps=total, train_loss=1.0 / step, train_mean_token_accuracy=0.5, epoch=epoch,
                full_valid_loss=0.9 / step if end else None,
                classification={"accuracy": 0.5 + step / 100, "macro_f1": 0.4} if end else {},
            )  # fmt: skip
            sink.log_metrics(metrics)
            if end:
                last = spec.output_dir / f"step-{step:06d}"
                last.mkdir(parents=True)
                (last / "meta.json").write_text(json.dumps({"step": step}))
                for old in sorted(spec.output_dir.glob("step-*"))[: -spec.max_checkpoints]:
                    shutil.rmtree(old)
                sink.on_checkpoint(CheckpointInfo(step=step, epoch=epoch, path=last, metrics=metrics))
        hparams = {"n_epochs": self.epochs, "batch_size": 4, "learning_rate_multiplier": 1.0, "lora_r": 8}
        return TrainResult(final_checkpoint=last, trained_tokens=1234, steps=total, hyperparameters=hparams)


@pytest.fixture
def store(settings: Settings) -> Store:
    return Store.open(settings.db_url)


def _queued_job(settings: Settings, store: Store) -> JobRecord:
    storage = FileStorage(store, settings.files_dir)
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "positive"}]}
    upload = storage.save_bytes((json.dumps(line) + "\n").encode() * 10, filename="t.jsonl", purpose="fine-tune")
    job = JobRecord(
        id=ids.job_id(), created_at=1, model="m", base_model="m", training_file=upload.id, validation_file=None,
        hyperparameters={"n_epochs": "auto"}, method={"type": "supervised", "supervised": {"hyperparameters": {}}},
        suffix="s", seed=3, metadata=None, organization_id="org", status="validating_files", error=None,
        model_name="ft:m:org:s:abcdefgh", fine_tuned_model=None, finished_at=None, trained_tokens=None,
        estimated_finish=None,
    )  # fmt: skip
    store.add_job(job, ["Created fine-tuning job"])
    assert validate_job(storage, job)
    return store.get_job(job.id)


def _messages(store: Store, job_id: str) -> list[str]:
    return [e.message for e in reversed(store.list_events(job_id, limit=1000).data)]


def _worker(settings: Settings, store: Store, train: Callable[[TrainSpec, EventSink], TrainResult]) -> Worker:
    return Worker(settings, store, lease_seconds=2, poll_interval=0.01, train=train)


def test_a_job_runs_to_success_with_checkpoints_events_and_result_file(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    trainer = ScriptedTrainer()
    assert _worker(settings, store, trainer).run_once()
    done = store.get_job(job.id)
    assert done.status == "succeeded" and done.fine_tuned_model == "ft:m:org:s:abcdefgh"
    assert (done.trained_tokens, done.estimated_finish) == (1234, None)
    assert done.hyperparameters == {"n_epochs": 4, "batch_size": 4, "learning_rate_multiplier": 1.0}
    spec = trainer.specs[0]
    assert (spec.seed, spec.resume_from, spec.max_checkpoints) == (3, None, 3)
    messages = _messages(store, job.id)
    assert messages[:4] == [
        "Created fine-tuning job", "Files validated, moving job to queued state", "Fine-tuning job started",
        "Step 1/8: training loss=1.0000",
    ]  # fmt: skip
    assert "Step 2/8: training loss=0.5000, full validation loss=0.4500, full validation accuracy=0.5200, " \
        "full validation macro_f1=0.4000" in messages  # fmt: skip
    assert [m for m in messages if m.startswith("Checkpoint")] == [
        f"Checkpoint created at step {n}" for n in (2, 4, 6, 8)
    ]
    assert messages[-2:] == ["New fine-tuned model created: ft:m:org:s:abcdefgh", "The job has successfully completed"]
    # Only the newest three checkpoints are kept, each a model id.
    kept = store.checkpoints_of(job.id)
    assert [c.step_number for c in kept] == [8, 6, 4]
    assert kept[0].model_id == "ft:m:org:s:abcdefgh:ckpt-step-8"
    assert kept[0].metrics["full_valid_accuracy"] == pytest.approx(0.58)
    model = store.get_model("ft:m:org:s:abcdefgh")
    assert model is not None and (settings.home / model.path / "meta.json").is_file()
    [result_id] = done.result_files
    result = store.get_file(result_id)
    assert result.purpose == "fine-tune-results"
    rows = list(csv.DictReader(io.StringIO((settings.files_dir / result.storage_name).read_text())))
    assert list(rows[0]) == [
        "step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy", "full_valid_loss",
        "full_valid_mean_token_accuracy", "full_valid_accuracy", "full_valid_macro_f1",
    ]  # fmt: skip
    assert [r["step"] for r in rows] == [str(n) for n in range(1, 9)]
    assert rows[0]["train_loss"] == "1.00000" and rows[0]["full_valid_accuracy"] == ""
    assert rows[1]["full_valid_accuracy"] == "0.52000"


def test_training_runs_in_a_thread_that_ends_with_the_job(settings: Settings, store: Store) -> None:
    # An OpenMP team lives as long as its thread: a long-lived worker thread would keep one beside the engine's.
    _queued_job(settings, store)
    threads: list[threading.Thread] = []

    def train(spec: TrainSpec, sink: EventSink) -> TrainResult:
        threads.append(threading.current_thread())
        return ScriptedTrainer(epochs=1)(spec, sink)

    assert _worker(settings, store, train).run_once()
    assert len(threads) == 1 and threads[0] is not threading.current_thread() and not threads[0].is_alive()


def test_the_compile_setting_reaches_the_training_run(settings: Settings, store: Store) -> None:
    _queued_job(settings, store)
    specs: list[TrainSpec] = []

    def train(spec: TrainSpec, sink: EventSink) -> TrainResult:
        specs.append(spec)
        return ScriptedTrainer(epochs=1)(spec, sink)

    assert _worker(replace(settings, compile_layers="off"), store, train).run_once()
    assert [spec.compile_layers for spec in specs] == ["off"]


def test_cancel_stops_a_running_job_within_seconds(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    trainer = ScriptedTrainer(wait_for_stop=threading.Event())
    worker = _worker(settings, store, trainer)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    assert trainer.started.wait(10)
    assert store.transition(job.id, expect=["running"], status="cancelled", message="Fine-tuning job cancelled")
    thread.join(10)
    assert not thread.is_alive()
    final = store.get_job(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None
    assert store.list_models() == []


def test_data_errors_fail_the_job_with_their_code(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    error = DataValidationError("line 3: no assistant message", code="invalid_training_file", param="training_file")
    _worker(settings, store, ScriptedTrainer(fail_with=error)).run_once()
    failed = store.get_job(job.id)
    assert failed.status == "failed"
    assert failed.error == {
        "code": "invalid_training_file", "message": "line 3: no assistant message", "param": "training_file",
    }  # fmt: skip
    assert _messages(store, job.id)[-1] == "Fine-tuning job failed: line 3: no assistant message"


def test_unexpected_errors_fail_the_job_without_killing_the_worker(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    _worker(settings, store, ScriptedTrainer(fail_with=RuntimeError("CUDA fell off"))).run_once()
    failed = store.get_job(job.id)
    assert failed.error is not None and failed.error["code"] == "training_failed"
    assert "RuntimeError: CUDA fell off" in failed.error["message"]


def _died_after_checkpoint(settings: Settings, store: Store, job: JobRecord, step: int) -> None:
    """Another worker took the job, wrote and recorded the checkpoint of `step`, then died (no more heartbeats)."""
    assert store.claim_next("otherhost:1:dead", lease_seconds=0.05) is not None
    folder = settings.jobs_dir / job.id / f"step-{step:06d}"
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"step": step}))
    store.add_checkpoint(
        CheckpointRecord(
            id=ids.checkpoint_id(), job_id=job.id, created_at=1, step_number=step,
            model_id=f"ft:m:org:s:abcdefgh:ckpt-step-{step}", metrics={},
            path=str(folder.relative_to(settings.home)),
        ),
        f"Checkpoint created at step {step}",
    )  # fmt: skip


def test_a_dead_workers_job_resumes_from_its_last_checkpoint(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    _died_after_checkpoint(settings, store, job, step=4)
    time.sleep(0.1)
    trainer = ScriptedTrainer()
    assert _worker(settings, store, trainer).run_once()
    assert trainer.specs[0].resume_from == settings.jobs_dir / job.id / "step-000004"
    done = store.get_job(job.id)
    assert (done.status, done.attempts) == ("succeeded", 2)
    messages = _messages(store, job.id)
    taken = next(i for i, m in enumerate(messages) if m.startswith("Worker otherhost:1:dead stopped"))
    assert messages[taken + 1] == "Resuming fine-tuning job from checkpoint at step 4"
    assert messages[taken + 2] == "Step 5/8: training loss=0.2000"


def test_a_progress_save_newer_than_the_last_checkpoint_is_resumed_from(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    _died_after_checkpoint(settings, store, job, step=4)
    # The dead worker also saved its progress mid-epoch, after that checkpoint.
    progress = progress_dir(settings.jobs_dir / job.id, 5)
    progress.mkdir()
    write_meta(progress, CheckpointMeta(base_model="m", family="causal_lm", task="classification", step=5, epoch=2))
    (progress / "meta.json").write_text(json.dumps({"step": 5}))
    time.sleep(0.1)
    trainer = ScriptedTrainer()
    assert _worker(settings, store, trainer).run_once()
    assert trainer.specs[0].resume_from == progress
    messages = _messages(store, job.id)
    resumed = messages.index("Resuming fine-tuning job from a progress save at step 5")
    assert messages[resumed + 1].startswith("Step 6/8: training loss=0.1667")
    assert store.get_job(job.id).status == "succeeded"


def test_a_job_of_a_dead_process_on_this_host_is_taken_at_once(settings: Settings, store: Store) -> None:
    import socket

    job = _queued_job(settings, store)
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    assert store.claim_next(f"{socket.gethostname()}:{dead_pid}:x", lease_seconds=3600) is not None
    trainer = ScriptedTrainer()
    assert _worker(settings, store, trainer).run_once()
    assert store.get_job(job.id).status == "succeeded"
    assert "Restarting fine-tuning job from the beginning (no checkpoint saved yet)" in _messages(store, job.id)


def test_worker_shutdown_requeues_the_running_job(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    trainer = ScriptedTrainer(wait_for_stop=threading.Event())
    worker = _worker(settings, store, trainer)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    assert trainer.started.wait(10)
    worker.stop()
    thread.join(10)
    requeued = store.get_job(job.id)
    assert (requeued.status, requeued.worker_id) == ("queued", None)
    assert _messages(store, job.id)[-1].startswith("Worker stopping; job moved back to queued state")


def test_a_failure_while_saving_the_model_fails_the_job(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)

    def lost_weights(spec: TrainSpec, sink: EventSink) -> TrainResult:
        return TrainResult(final_checkpoint=spec.output_dir / "gone", trained_tokens=1, steps=1, hyperparameters={})

    _worker(settings, store, lost_weights).run_once()
    failed = store.get_job(job.id)
    assert failed.status == "failed" and failed.error is not None
    assert failed.error["message"].startswith("Saving the fine-tuned model failed: FileNotFoundError")
    assert store.list_models() == [] and failed.fine_tuned_model is None


def test_graceful_stops_never_use_up_the_jobs_attempts(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    for _ in range(MAX_ATTEMPTS + 2):  # more clean restarts than a job may crash
        trainer = ScriptedTrainer(wait_for_stop=threading.Event())
        worker = _worker(settings, store, trainer)
        thread = threading.Thread(target=worker.run_forever)
        thread.start()
        assert trainer.started.wait(10)
        worker.stop()
        thread.join(10)
        requeued = store.get_job(job.id)
        assert (requeued.status, requeued.attempts) == ("queued", 0)
    assert _worker(settings, store, ScriptedTrainer()).run_once()
    assert store.get_job(job.id).status == "succeeded"


def test_a_resumed_run_logs_each_step_once(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    _died_after_checkpoint(settings, store, job, step=4)
    for step in (5, 6):  # the dead worker trained and logged two more steps before it died
        store.add_event(job.id, f"Step {step}/8: training loss=0.2", type="metrics", data={"step": step})
    time.sleep(0.1)
    assert _worker(settings, store, ScriptedTrainer()).run_once()
    messages = _messages(store, job.id)
    for step in range(5, 9):
        assert sum(m.startswith(f"Step {step}/8:") for m in messages) == 1, messages
    assert "Resuming fine-tuning job from checkpoint at step 4 (steps 5-6 run again; their metrics were logged " \
        "the first time)" in messages  # fmt: skip
    assert store.get_job(job.id).status == "succeeded"


def test_an_ended_job_keeps_only_what_serves_its_models(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)

    def with_trainer_state(spec: TrainSpec, sink: EventSink) -> TrainResult:
        result = ScriptedTrainer()(spec, sink)
        for folder in spec.output_dir.glob("step-*"):
            (folder / STATE_FILE).write_bytes(b"optimizer moments")
        progress_dir(spec.output_dir, 7).mkdir()
        return result

    assert _worker(settings, store, with_trainer_state).run_once()
    model = store.get_model("ft:m:org:s:abcdefgh")
    assert model is not None
    served = settings.home / model.path
    assert sorted(p.name for p in served.iterdir()) == ["meta.json"]  # no trainer state in the model
    final = settings.jobs_dir / job.id / "step-000008"
    assert (served / "meta.json").stat().st_ino == (final / "meta.json").stat().st_ino  # stored once
    folders = sorted(p.name for p in (settings.jobs_dir / job.id).iterdir())
    assert folders == ["step-000004", "step-000006", "step-000008"]  # the progress save is gone
    assert not list((settings.jobs_dir / job.id).glob(f"*/{STATE_FILE}"))  # nothing resumes an ended job


def test_a_failed_job_drops_its_trainer_states_too(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)

    def fails_after_a_checkpoint(spec: TrainSpec, sink: EventSink) -> TrainResult:
        folder = spec.output_dir / "step-000002"
        folder.mkdir(parents=True)
        (folder / STATE_FILE).write_bytes(b"optimizer moments")
        raise RuntimeError("out of memory")

    _worker(settings, store, fails_after_a_checkpoint).run_once()
    assert store.get_job(job.id).status == "failed"
    assert not (settings.jobs_dir / job.id / "step-000002" / STATE_FILE).exists()


def test_workers_report_themselves_live_and_leave_the_list_on_stop(settings: Settings, store: Store) -> None:
    job = _queued_job(settings, store)
    trainer = ScriptedTrainer(wait_for_stop=threading.Event())
    worker = Worker(settings, store, worker_id="host:42:abc", lease_seconds=2, poll_interval=0.01, train=trainer)
    thread = threading.Thread(target=worker.run_forever)
    thread.start()
    assert trainer.started.wait(10)
    deadline = time.monotonic() + 10
    while not [w for w in store.live_workers() if w.job_id == job.id] and time.monotonic() < deadline:
        time.sleep(0.05)  # the heartbeat reports the job within a second
    [live] = store.live_workers()
    assert (live.id, live.host, live.pid, live.job_id) == ("host:42:abc", "host", 42, job.id)
    worker.stop()
    thread.join(10)
    assert store.live_workers() == []


def test_a_silent_worker_drops_off_the_list(store: Store) -> None:
    store.worker_seen("host:1:gone", host="host", pid=1, lease_seconds=-1, job_id=None)
    store.worker_seen("host:2:here", host="host", pid=2, lease_seconds=60, job_id=None)
    assert [w.id for w in store.live_workers()] == ["host:2:here"]


def test_a_worker_refuses_a_data_folder_that_is_not_the_servers(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    with pytest.raises(DataFolderMismatch, match="No server has marked"):
        check_data_folder(store, settings.home)
    marked = mark_data_folder(store, settings.home)  # what the server does when it starts
    assert check_data_folder(store, settings.home) == marked
    elsewhere = tmp_path / "not-the-shared-folder"
    with pytest.raises(DataFolderMismatch, match=r"not-the-shared-folder has no \.localft-data-id"):
        check_data_folder(store, elsewhere)
    other = tmp_path / "other-database-folder"
    other.mkdir()
    (other / MARKER).write_text("0123456789abcdef\n")
    with pytest.raises(DataFolderMismatch, match="holds 0123456789abcdef"):
        check_data_folder(store, other)
    assert mark_data_folder(store, settings.home) == marked  # a restarted server keeps its mark


def test_a_worker_whose_clock_runs_ahead_leaves_a_healthy_job_alone(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = _queued_job(settings, store)
    trainer = ScriptedTrainer(wait_for_stop=threading.Event())
    healthy = Worker(settings, store, worker_id="host:1:healthy", lease_seconds=30, poll_interval=0.01, train=trainer)
    thread = threading.Thread(target=healthy.run_forever)
    thread.start()
    assert trainer.started.wait(10)
    true_time = time.time
    monkeypatch.setattr(time, "time", lambda: true_time() + 60)  # the second worker's clock is a minute ahead
    skewed = Worker(settings, store, worker_id="host:2:skewed", lease_seconds=30, train=ScriptedTrainer())
    assert not skewed.run_once()  # its first poll takes nothing
    running = store.get_job(job.id)
    assert (running.status, running.worker_id, running.attempts) == ("running", "host:1:healthy", 1)
    assert not any("stopped while running this job" in m for m in _messages(store, job.id))
    healthy.stop()
    thread.join(10)
