"""The worker: claim a job, train it through the engine, record what it produced, finish or fail it.

One worker runs one job at a time. The server runs one in a thread by default; `localft worker` runs more as
separate processes against the same database, and the store's atomic claim keeps them from taking the same job.
A worker killed mid-job stops renewing its lease; the next claim (by any worker, or by itself after a restart)
takes the job over and training resumes from the newest checkpoint, with an event saying so. A worker stopped on
purpose hands its job back without using up one of its attempts. Workers report themselves live in the store
(`localft workers`); a job that ends keeps only what serves its models (`jobs.retention`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from localft import ids
from localft.base_models import in_passing_thread
from localft.errors import DataValidationError, LocalftError, TrainingCancelled, TrainingInterrupted
from localft.jobs.files import FileStorage
from localft.jobs.intake import validate_job
from localft.jobs.results import result_csv
from localft.jobs.retention import publish_model, release_job_folder
from localft.jobs.schema import JobRecord, ModelRecord
from localft.jobs.sink import KEEP_CHECKPOINTS, StoreSink
from localft.jobs.store import Store, db_seconds
from localft.settings import Settings
from localft.training.checkpoint import latest_progress
from localft.training.hparams import EXTENSION_KEYS, OPENAI_KEYS, Hyperparameters
from localft.training.interfaces import EventSink, TrainResult, TrainSpec

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0
Train = Callable[[TrainSpec, EventSink], TrainResult]

VALIDATION_GRACE_SECONDS = 60.0
"""A job still validating this long after creation lost its validation to a crash; the worker redoes it."""
MAX_ATTEMPTS = 5
"""A job taken over this many times (each one a crash) fails instead of crashing workers forever."""


class ResumePoint(NamedTuple):
    """Where a taken-over job continues: a checkpoint, or a newer mid-epoch progress save."""

    step: int
    folder: Path
    kind: str
    """How the job's event names it."""


def new_worker_id() -> str:
    """`host:pid:random`; host and pid let a restarted worker on the same machine spot its dead predecessors."""
    return f"{socket.gethostname()}:{os.getpid()}:{ids.short_suffix()}"


class Worker:
    """Runs queued jobs one at a time until `stop()`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        worker_id: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_interval: float = 1.0,
        train: Train | None = None,
    ) -> None:
        """`train` defaults to `localft.training.run_training` (imported on first use: it pulls in torch)."""
        self.settings = settings
        self._train = train
        self.store = store
        self.storage = FileStorage(store, settings.files_dir)
        self.worker_id = worker_id or new_worker_id()
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._live_for = max(lease_seconds, 3 * poll_interval)
        """How long the list of workers counts this one live after a report."""
        self._reported_at = -float("inf")

    def stop(self) -> None:
        """Ask the loop to end; a running job is handed back to the queue and resumes later."""
        self._stop.set()

    def run_forever(self) -> None:
        log.info("worker %s polling %s", self.worker_id, self.settings.db_url)
        self.recover(validations_older_than=0)
        try:
            while not self._stop.is_set():
                try:
                    if time.monotonic() - self._reported_at > self._live_for / 3:  # idle: now and then
                        self.report_alive()
                    worked = self.run_once()
                except Exception:  # the loop must survive anything one job or a DB hiccup throws
                    log.exception("worker %s: unexpected error", self.worker_id)
                    worked = False
                if not worked:
                    self._stop.wait(self.poll_interval)
        finally:
            try:
                self.store.worker_gone(self.worker_id)
            except Exception:  # the database may be what failed; the entry then lapses on its own
                log.warning("worker %s: could not take itself off the list of workers", self.worker_id)

    def report_alive(self, job_id: str | None = None) -> None:
        """Tell the store this worker is live (and what it runs), for `localft workers` and the dashboard."""
        host, _, rest = self.worker_id.partition(":")
        pid = rest.partition(":")[0]
        self.store.worker_seen(
            self.worker_id, host=host, pid=int(pid) if pid.isdigit() else 0, lease_seconds=self._live_for, job_id=job_id
        )
        self._reported_at = time.monotonic()

    def run_once(self) -> bool:
        """Recover, then claim and run at most one job; returns whether a job was run."""
        self.recover(validations_older_than=VALIDATION_GRACE_SECONDS)
        job = self.store.claim_next(self.worker_id, self.lease_seconds)
        if job is None:
            return False
        self.report_alive(job.id)
        try:
            self.run_job(job)
        finally:
            self.report_alive()
        return True

    def recover(self, validations_older_than: float = 0) -> None:
        """Finish what crashes interrupted: validate stuck files, free jobs of dead workers on this host.

        A job younger than `validations_older_than` seconds is left to the validation its create request started.
        """
        cutoff = self.store.now() - validations_older_than
        for job in self.store.jobs_with_status("validating_files"):
            if job.created_at <= cutoff:
                validate_job(self.storage, job)
        for job in self.store.running_jobs():
            if job.worker_id and job.worker_id != self.worker_id and _dead_here(job.worker_id):
                self.store.expire_lease(job.id, job.worker_id)

    # --- one job ----------------------------------------------------------------------------------------------

    def run_job(self, job: JobRecord) -> None:
        if job.attempts > MAX_ATTEMPTS:
            self._fail(job, "training_failed", f"The job was interrupted {job.attempts - 1} times; giving up.")
            return
        resume = self._resume_point(job)
        logged_up_to = self.store.last_logged_step(job.id)
        start = 0 if resume is None else resume.step
        again = ""
        if logged_up_to > start:
            again = f" (steps {start + 1}-{logged_up_to} run again; their metrics were logged the first time)"
        if resume is not None:
            self.store.add_event(job.id, f"Resuming fine-tuning job from {resume.kind} at step {resume.step}{again}")
        elif job.attempts > 1 or logged_up_to:
            self.store.add_event(
                job.id, f"Restarting fine-tuning job from the beginning (no checkpoint saved yet){again}"
            )
        else:
            self.store.add_event(job.id, "Fine-tuning job started")
        try:
            spec = self._spec(job, None if resume is None else resume.folder)
            train = self._train or _default_train()
            with StoreSink(
                self.store,
                job,
                worker_id=self.worker_id,
                home=self.settings.home,
                lease_seconds=self.lease_seconds,
                shutdown=self._stop,
                logged_up_to=logged_up_to,
                alive=lambda: self.report_alive(job.id),
            ) as sink:
                self._show_resolved_hyperparameters(job, spec)
                result = in_passing_thread(train, spec, sink)  # its OpenMP team ends with the job
        except TrainingCancelled:
            self._stopped(job)
            return
        except TrainingInterrupted as exc:
            what = exc.message.splitlines()[0].partition(";")[0].rstrip(".:")
            self._requeue(job, f"Training was interrupted ({what}): back in the queue, to resume from its checkpoint")
            return
        except DataValidationError as exc:
            self._fail(job, exc.code or "invalid_training_file", exc.message, exc.param or "training_file")
            return
        except LocalftError as exc:
            self._fail(job, exc.code or "training_failed", exc.message, exc.param)
            return
        except Exception as exc:
            log.error("job %s failed:\n%s", job.id, traceback.format_exc())
            self._fail(job, "training_failed", f"Training failed: {type(exc).__name__}: {exc}")
            return
        try:
            self._succeed(job, result)
        except Exception as exc:  # e.g. a full disk while copying weights: say so rather than retrain forever
            log.error("job %s: saving results failed:\n%s", job.id, traceback.format_exc())
            self._fail(job, "training_failed", f"Saving the fine-tuned model failed: {type(exc).__name__}: {exc}")

    def _resume_point(self, job: JobRecord) -> ResumePoint | None:
        """The newest of the job's recorded checkpoints (whose folder still exists) and its mid-epoch progress
        saves."""
        points = [
            ResumePoint(record.step_number, self.settings.home / record.path, "checkpoint")
            for record in self.store.checkpoints_of(job.id)
            if (self.settings.home / record.path).is_dir()
        ]
        progress = latest_progress(self.settings.jobs_dir / job.id)
        if progress is not None:
            points.append(ResumePoint(*progress, "a progress save"))
        return max(points, key=lambda point: point.step, default=None)

    def _spec(self, job: JobRecord, resume_from: Path | None) -> TrainSpec:
        requested = job.method.get("supervised", {}).get("hyperparameters") or {}
        validation = None
        if job.validation_file:
            validation = self.storage.path(self.store.get_file(job.validation_file))
        return TrainSpec(
            base_model=job.base_model,
            training_file=self.storage.path(self.store.get_file(job.training_file)),
            validation_file=validation,
            output_dir=self.settings.jobs_dir / job.id,
            hyperparameters=Hyperparameters.from_dict(requested),
            seed=job.seed,
            resume_from=resume_from,
            device=self.settings.device,
            cache_dir=self.settings.cache_dir,
            max_checkpoints=KEEP_CHECKPOINTS,
            compile_layers=self.settings.compile_layers,
            devices=self.settings.devices,
        )

    def _show_resolved_hyperparameters(self, job: JobRecord, spec: TrainSpec) -> None:
        """Replace "auto" in the job's hyperparameters with the values training will use, before it starts (and a
        `max_length` with what the model's positions allow).

        The engine reports what it used only at the end (TrainResult); OpenAI shows resolved values while running.
        This asks the engine's own rules (training/auto.py) the same question; any problem here is left for
        training itself to report, so it is only logged.
        """
        if "auto" not in job.hyperparameters.values() and not set(EXTENSION_KEYS) & set(job.hyperparameters):
            return
        from localft.base_models import AUTO, resolve_alias

        if resolve_alias(spec.base_model) == AUTO:
            return  # what runs is chosen by scoring the data: the job shows it when training ends
        try:
            from localft.base_models import local_model_dir, model_family, model_positions
            from localft.training.auto import resolve, within_positions
            from localft.training.dataset import read_examples

            model_dir = local_model_dir(spec.base_model, self.settings.cache_dir)
            family = model_family(resolve_alias(spec.base_model), model_dir)
            asked = resolve(spec.hyperparameters, family, len(read_examples(spec.training_file)))
            resolved = within_positions(asked, model_positions(model_dir)).to_dict()
            resolved["devices"] = job.hyperparameters.get("devices")  # as asked: the run decides the rest
        except Exception:
            log.warning("job %s: could not resolve hyperparameters early", job.id, exc_info=True)
            return
        self.store.transition(
            job.id,
            expect=["running"],
            held_by=self.worker_id,
            hyperparameters=_public_hyperparameters(resolved, job.hyperparameters),
        )

    def _stopped(self, job: JobRecord) -> None:
        """Training stopped on request. Cancel/pause already set the status; a shutdown re-queues the job."""
        if self._stop.is_set():
            self.store.give_back(
                job.id,
                self.worker_id,
                "Worker stopping; job moved back to queued state and will resume from its last checkpoint",
            )
        elif self.store.get_job(job.id).status == "cancelled":
            release_job_folder(self.settings.jobs_dir / job.id)

    def _requeue(self, job: JobRecord, message: str) -> None:
        """Training was interrupted by a lost process or machine: queue the job again (each try counts towards
        `MAX_ATTEMPTS`, so a job that keeps killing its processes fails in the end)."""
        self.store.transition(
            job.id, expect=["running"], held_by=self.worker_id, status="queued", worker_id=None, message=message,
            level="warn",
        )  # fmt: skip

    def _fail(self, job: JobRecord, code: str, message: str, param: str | None = None) -> None:
        failed = self.store.transition(
            job.id,
            expect=["running"],
            held_by=self.worker_id,
            status="failed",
            error={"code": code, "message": message, "param": param},
            finished_at=db_seconds(),
            estimated_finish=None,
            message=f"Fine-tuning job failed: {message}",
            level="error",
        )
        if failed:
            release_job_folder(self.settings.jobs_dir / job.id)

    def _succeed(self, job: JobRecord, result: TrainResult) -> None:
        model_dir = self.settings.models_dir / job.id
        publish_model(result.final_checkpoint, model_dir)
        rows = [event.data or {} for event in self.store.metrics_events(job.id)]
        csv_text = result_csv(rows)
        result_file = self.storage.save_bytes(
            csv_text.encode(), filename="step_metrics.csv", purpose="fine-tune-results", project=job.project
        )
        model = ModelRecord(
            id=job.model_name,
            created_at=int(time.time()),
            owned_by=job.organization_id,
            job_id=job.id,
            base_model=job.base_model,
            path=str(model_dir.relative_to(self.settings.home)),
            project=job.project,
        )
        done = self.store.complete_job(
            job.id,
            self.worker_id,
            model,
            [f"New fine-tuned model created: {job.model_name}", "The job has successfully completed"],
            fine_tuned_model=job.model_name,
            finished_at=db_seconds(),
            trained_tokens=result.trained_tokens,
            hyperparameters=_public_hyperparameters(result.hyperparameters, job.hyperparameters),
            result_files=[result_file.id],
            estimated_finish=None,
        )
        if not done:  # cancelled in the last instant: leave nothing behind that names a model that does not exist
            shutil.rmtree(model_dir, ignore_errors=True)
            self.storage.delete(result_file.id)
        release_job_folder(self.settings.jobs_dir / job.id)  # ended either way: nothing will resume it


def _default_train() -> Train:
    from localft.training import run_training  # type: ignore[attr-defined,unused-ignore]

    train: Train = run_training
    return train


def _public_hyperparameters(resolved: dict[str, Any], requested: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's three as they ran, localft's extensions (`max_length`, `lora_rank`, ...) where the job asked for them,
    and for `auto` jobs the `classifier` that was chosen (another extension)."""
    keys = [*OPENAI_KEYS, "classifier", *(key for key in EXTENSION_KEYS if key in requested)]
    return {key: resolved[key] for key in keys if key in resolved}


def _dead_here(worker_id: str) -> bool:
    """True when `worker_id` names a process on this host that no longer exists."""
    host, _, rest = worker_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False
