"""The store-backed EventSink the worker hands to the training engine.

Messages and metrics become job events with OpenAI's wording; checkpoints become rows (and servable model ids).
A heartbeat thread renews the worker's lease on the job; when renewal fails (the job was cancelled or paused, or
another worker took it over) or the worker is shutting down, `should_stop()` turns True and training stops at the
next step boundary. A resumed run re-runs the steps after its checkpoint; each step keeps the one metrics event
it was first logged with, so charts built from events plot every step once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from localft import ids
from localft.jobs.registry import checkpoint_model_name
from localft.jobs.schema import CheckpointRecord, JobRecord
from localft.jobs.store import Store
from localft.training.interfaces import CheckpointInfo, EventLevel, StepMetrics

log = logging.getLogger(__name__)

KEEP_CHECKPOINTS = 3


class StoreSink:
    """Reports one training run of one job into the store."""

    def __init__(
        self,
        store: Store,
        job: JobRecord,
        *,
        worker_id: str,
        home: Path,
        lease_seconds: float,
        shutdown: threading.Event,
        logged_up_to: int = 0,
        alive: Callable[[], None] | None = None,
    ) -> None:
        """`logged_up_to`: the last step that already has its metrics event; `alive` is called at each heartbeat
        (the worker reports itself live)."""
        self.store = store
        self.job = job
        self.worker_id = worker_id
        self.home = home
        self.lease_seconds = lease_seconds
        self.shutdown = shutdown
        self.logged_up_to = logged_up_to
        self.alive = alive
        self.lost = threading.Event()
        """Set when the lease could not be renewed: the job is no longer ours to run."""
        self._done = threading.Event()
        self._started = time.time()
        self._first_step: int | None = None
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> StoreSink:
        self._heartbeat.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._heartbeat.join()

    # --- EventSink --------------------------------------------------------------------------------------------

    def log(self, message: str, level: EventLevel = "info") -> None:
        self.store.add_event(self.job.id, message, level=level)

    def log_metrics(self, metrics: StepMetrics) -> None:
        if metrics.step <= self.logged_up_to:  # re-run after a resume: the step has its event already
            return
        parts = [f"training loss={metrics.train_loss:.4f}"]
        if metrics.valid_loss is not None:
            parts.append(f"validation loss={metrics.valid_loss:.4f}")
        if metrics.full_valid_loss is not None:
            parts.append(f"full validation loss={metrics.full_valid_loss:.4f}")
        for name, value in metrics.classification.items():
            parts.append(f"full validation {name}={value:.4f}")
        message = f"Step {metrics.step}/{metrics.total_steps}: {', '.join(parts)}"
        self.store.add_event(self.job.id, message, type="metrics", data=metrics.as_event_data())
        self._estimate_finish(metrics.step, metrics.total_steps)

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        record = CheckpointRecord(
            id=ids.checkpoint_id(),
            job_id=self.job.id,
            created_at=int(time.time()),
            step_number=checkpoint.step,
            model_id=checkpoint_model_name(self.job.model_name, checkpoint.step),
            metrics=_checkpoint_metrics(checkpoint.metrics),
            path=_relative(checkpoint.path, self.home),
        )
        self.store.add_checkpoint(record, f"Checkpoint created at step {checkpoint.step}")
        self._prune()

    def should_stop(self) -> bool:
        """Between steps: stop when shut down, or once the job is no longer this worker's running job (paused,
        cancelled, taken over). The status is read at every step, not only at the heartbeat, so a pause or cancel
        takes effect at the next step even when the whole run is shorter than one heartbeat interval."""
        if self.lost.is_set() or self.shutdown.is_set():
            return True
        try:
            job = self.store.get_job(self.job.id)
        except Exception:  # a transient DB error: the heartbeat decides, as before
            return False
        if job.status != "running" or job.worker_id != self.worker_id:
            self.lost.set()
        return self.lost.is_set()

    # --- internals --------------------------------------------------------------------------------------------

    def _prune(self) -> None:
        """Keep the records of the newest checkpoints whose folders still exist (the engine deletes older ones)."""
        records = self.store.checkpoints_of(self.job.id)
        gone = [r.id for i, r in enumerate(records) if i >= KEEP_CHECKPOINTS or not (self.home / r.path).is_dir()]
        self.store.delete_checkpoints(gone)

    def _estimate_finish(self, step: int, total: int) -> None:
        if self._first_step is None:
            self._first_step, self._started = step, time.time()
            return
        done = step - self._first_step
        if done <= 0 or total <= step:
            return
        per_step = (time.time() - self._started) / done
        eta = int(self.store.now() + per_step * (total - step))  # the database's clock, as every other time
        self.store.transition(self.job.id, expect=["running"], held_by=self.worker_id, estimated_finish=eta)

    def _beat(self) -> None:
        interval = max(0.2, min(2.0, self.lease_seconds / 3))
        while not self._done.wait(interval):
            try:
                if not self.store.heartbeat(self.job.id, self.worker_id, self.lease_seconds):
                    self.lost.set()
                    return
                if self.alive is not None:
                    self.alive()
            except Exception:  # a transient DB error must not kill the run; the lease has slack for retries
                log.exception("heartbeat for %s failed", self.job.id)


def _checkpoint_metrics(metrics: StepMetrics) -> dict[str, float | int | None]:
    data = metrics.as_event_data()
    data.pop("total_steps", None)
    data.pop("epoch", None)
    return data


def _relative(path: Path, home: Path) -> str:
    try:
        return str(path.resolve().relative_to(home.resolve()))
    except ValueError:  # the engine wrote outside the data folder (tests, custom output dirs): keep it absolute
        return str(path.resolve())
