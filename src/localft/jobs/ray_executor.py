"""Many machines through Ray: `localft serve --executor ray` hands each queued job to a Ray cluster as a task.

The server stays what it is (the API, the database, the events); instead of training in its own thread it connects
to the cluster at `RAY_ADDRESS` and, for every queued job, submits one task that asks for the job's resources
(`resources_for`: a GPU where the cluster has them, else `LOCALFT_JOB_CPUS` CPUs, and memory by the model's size).
On whichever node Ray places it, the task is an ordinary `localft.jobs.worker.Worker` for that one job: it claims the
job in the database, trains, writes checkpoints and the model to the shared data folder and events to the database,
renewing its lease as it goes. So job state and events stay in localft's database, every node must reach that
database (PostgreSQL, for nodes on other machines) and see the data folder at the same path: each task checks the
folder's marker (`MARKER`) before it claims anything, and the executor checks a node at start.

A job that asks for several devices (`hyperparameters.devices`, else `LOCALFT_DEVICES`) trains through Ray Train's
`TorchTrainer`, one worker per device, each running `training.distributed.train_rank` in the process group Ray Train
sets up; the first reports to the job's task as local processes report to a worker.

When the process running a job dies (a node lost, a worker killed), Ray reports the task failed; the executor ends
its lease at once and submits the job again, and the new task, on any node with the resources, takes it over and
resumes from its newest checkpoint, with the events saying so (`Worker.run_job`). Ray does not retry tasks itself:
the job store's attempt count bounds retries (`worker.MAX_ATTEMPTS`).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from localft import ids
from localft.errors import LocalftError, TrainingError, TrainingInterrupted
from localft.jobs.schema import JobRecord
from localft.jobs.store import Store
from localft.jobs.worker import DEFAULT_LEASE_SECONDS, Worker
from localft.settings import ALL_DEVICES, Settings
from localft.training.interfaces import EventSink, TrainResult, TrainSpec

log = logging.getLogger(__name__)

MARKER = ".localft-data-folder"
"""A file in the data folder holding its id: a node that reads the same id sees the same folder."""
FORWARDED_ENV = ("LOCALFT_", "HF_", "TRANSFORMERS_", "TORCHINDUCTOR_")
"""Environment variables (by prefix) the server's tasks get on their nodes: Ray starts its workers with the
environment of `ray start`, not the server's."""
BYTES_PER_PARAMETER = {"causal_lm": 6, "encoder": 16}
"""Host memory a job asks for per parameter of its model: LoRA keeps the weights once (fp32 while loading, bf16
after) and trains a sliver of them; an encoder is fine-tuned in full (weights, gradients, AdamW's two moments)."""
BASE_MEMORY = 2 << 30
"""What a training process takes besides its model (torch, the tokenizer, the data)."""


class DataFolderMissing(LocalftError):
    """A Ray node does not see the server's data folder."""


def data_folder_id(home: Path) -> str:
    """The id in the data folder's marker, written on first use."""
    marker = home / MARKER
    if not marker.is_file():
        home.mkdir(parents=True, exist_ok=True)
        marker.write_text(secrets.token_hex(16) + "\n")
    return marker.read_text().strip()


def check_data_folder(home: Path, expected: str, node: str | None = None) -> str:
    """On a node (named `node`, else the Ray node this runs on): raise `DataFolderMissing` unless `home` holds the
    marker with `expected`; return the node's name."""
    if node is None:
        import ray

        node = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    marker = home / MARKER
    found = marker.read_text().strip() if marker.is_file() else None
    if found != expected:
        what = "no such folder" if not home.is_dir() else f"no {MARKER}" if found is None else "another data folder"
        raise DataFolderMissing(
            f"Ray node {node} does not see localft's data folder at {home} ({what}): mount the shared data folder at "
            "the same path on every node.",
            code="data_folder_missing",
        )
    return node


def resources_for(job: JobRecord, settings: Settings, cluster: dict[str, float]) -> tuple[int, dict[str, Any]]:
    """What a job asks the cluster for: (processes, each process's resources for Ray). One GPU per process where
    the cluster has GPUs and the server's device allows them, else `settings.job_cpus` CPUs; memory by the model's
    size."""
    asked = job.hyperparameters.get("devices")
    processes = asked if isinstance(asked, int) else settings.devices
    gpus = (
        int(cluster.get("GPU", 0)) if settings.device in ("auto", "cuda") or settings.device.startswith("cuda") else 0
    )
    if processes == ALL_DEVICES:
        processes = max(1, gpus)
    request: dict[str, Any] = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": settings.job_cpus}
    request["memory"] = model_memory(job.base_model)
    return processes, request


def model_memory(base_model: str) -> int:
    """Bytes of host memory a training process of `base_model` asks for: by its parameters (catalog) or its weight
    files (a folder)."""
    from localft.base_models import DEFAULT_BASE_MODEL, get_spec, model_family

    spec = get_spec(base_model)
    if spec is None and not (Path(base_model) / "config.json").is_file():
        spec = get_spec(DEFAULT_BASE_MODEL)  # a folder that went away fails on its node; ask for a usual job's
    if spec is not None:
        scale = {"K": 1e3, "M": 1e6, "B": 1e9}
        parameters = float(spec.params[:-1]) * scale.get(spec.params[-1].upper(), 1)
        family = spec.family
    else:
        folder = Path(base_model)
        weights = sum(f.stat().st_size for f in folder.glob("*.safetensors")) or sum(
            f.stat().st_size for f in folder.glob("*.bin")
        )
        parameters = weights / 2  # stored in 16 bits, most often; a 32-bit file asks for twice what it needs
        family = model_family(base_model, folder)
    return int(BASE_MEMORY + parameters * BYTES_PER_PARAMETER[family])


class RayExecutor:
    """Submits queued jobs to a Ray cluster until `stop()` (same interface as `Worker`, for the server's thread)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        poll_interval: float = 1.0,
        address: str | None = None,
    ) -> None:
        self.settings = replace(
            settings,
            home=settings.home.resolve(),
            cache_root=settings.cache_dir.resolve(),
            database_url=settings.db_url,  # the default SQLite path made absolute: tasks run in other folders
        )
        self.store = store
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.address = address or os.environ.get("RAY_ADDRESS")
        self._stop = threading.Event()
        self._in_flight: dict[str, tuple[Any, str]] = {}
        """job id -> (the task's ObjectRef, the token its worker id ends with)."""
        self._folder_id = data_folder_id(self.settings.home)

    def stop(self) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        try:
            self.connect()
        except Exception:
            log.exception("cannot use the Ray cluster at %s: no job will run", self.address or "a new local instance")
            return
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the loop must outlive a database hiccup or a failed submission
                log.exception("ray executor: unexpected error")
            self._stop.wait(self.poll_interval)

    def connect(self) -> None:
        """Join the cluster and check that a node sees the data folder (a warning in the log where none does)."""
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        if self.settings.db_url.startswith("sqlite"):
            log.warning(
                "Ray executor on a SQLite database: only Ray nodes on this machine can reach it; use PostgreSQL "
                "(LOCALFT_DATABASE_URL) for nodes on other machines"
            )
        probe = ray.remote(num_cpus=0, max_retries=0)(check_data_folder)
        try:
            node = ray.get(probe.remote(self.settings.home, self._folder_id), timeout=120)
            log.info("Ray cluster %s: node %s sees the data folder %s", self.address, node, self.settings.home)
        except Exception as exc:
            log.error("Ray cluster %s: %s", self.address, getattr(exc, "message", exc))

    def run_once(self) -> None:
        """Finish interrupted validations, collect finished tasks, submit the jobs that need a task."""
        Worker(self.settings, self.store).recover(validations_older_than=60.0)
        self._collect()
        now = time.time()
        waiting = self.store.jobs_with_status("queued") + [
            job for job in self.store.running_jobs() if (job.lease_expires_at or 0) < now
        ]
        for job in waiting:
            if job.id not in self._in_flight:
                self._submit(job)

    def _submit(self, job: JobRecord) -> None:
        import ray

        processes, request = resources_for(job, self.settings, ray.cluster_resources())  # type: ignore[no-untyped-call]
        token = "ray" + ids.short_suffix()
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}
        task = ray.remote(max_retries=0)(run_job_task)
        # A job on several devices waits in Ray Train's workers, not in its own task.
        options = {"num_cpus": 0, "memory": 0} if processes > 1 else request
        ref = task.options(**options, runtime_env={"env_vars": env}).remote(
            self.settings, job.id, token, self.lease_seconds, self._folder_id, processes, request
        )
        self._in_flight[job.id] = (ref, token)
        asked = ", ".join(f"{k.removeprefix('num_')} {v:g}" if k != "memory" else f"{v / 2**30:.1f} GiB memory"
                          for k, v in request.items())  # fmt: skip
        where = f"{processes} Ray Train workers, each with" if processes > 1 else "a Ray task with"
        self.store.add_event(job.id, f"Submitted to the Ray cluster: {where} {asked}")

    def _collect(self) -> None:
        """Tasks that ended: a task that died leaves its job running under a lease nobody renews; end that lease now,
        so the next round submits the job again (and a task that found no data folder fails its job)."""
        import ray

        if not self._in_flight:
            return
        refs = {ref: job_id for job_id, (ref, _token) in self._in_flight.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            job_id = refs[ref]
            _, token = self._in_flight.pop(job_id)
            try:
                ray.get(ref)
            except Exception as exc:
                self._task_failed(job_id, token, exc)

    def _task_failed(self, job_id: str, token: str, exc: BaseException) -> None:
        cause = exc if isinstance(exc, DataFolderMissing) else getattr(exc, "cause", None) or exc
        if isinstance(cause, DataFolderMissing):
            self.store.transition(
                job_id, expect=["queued"], status="failed", finished_at=int(time.time()),
                error={"code": cause.code, "message": cause.message, "param": None},
                message=f"Fine-tuning job failed: {cause.message}", level="error",
            )  # fmt: skip
            return
        job = self.store.get_job(job_id)
        log.warning("ray task for %s ended with %s: %s", job_id, type(exc).__name__, exc)
        if job.status == "running" and (job.worker_id or "").endswith(f":{token}"):
            self.store.add_event(
                job_id,
                f"The Ray task running this job was lost ({type(exc).__name__}); submitting it again: it resumes "
                "from its newest checkpoint",
                level="warn",
            )
            self.store.expire_lease(job_id, job.worker_id or "")


def run_job_task(
    settings: Settings,
    job_id: str,
    token: str,
    lease_seconds: float,
    folder_id: str,
    processes: int,
    request: dict[str, Any],
) -> str:
    """A Ray task: claim one job and run it with a `Worker` on this node. Returns what became of the claim."""
    check_data_folder(settings.home, folder_id)
    store = Store.open(settings.db_url)
    try:
        worker_id = f"{socket.gethostname()}:{os.getpid()}:{token}"  # as `worker.new_worker_id` names workers
        train = None if processes == 1 else _ray_train(processes, request, settings.home, job_id)
        worker = Worker(settings, store, worker_id=worker_id, lease_seconds=lease_seconds, train=train)
        job = store.claim(job_id, worker_id, lease_seconds)
        if job is None:
            return "not claimed"  # cancelled, paused or taken meanwhile
        worker.run_job(job)
        return store.get_job(job_id).status
    finally:
        store.close()


def _ray_train(processes: int, request: dict[str, Any], home: Path, job_id: str) -> Any:
    """A `Train` that runs a job in `processes` Ray Train workers (`training.distributed.train_rank` in each)."""

    def train(spec: TrainSpec, sink: EventSink) -> TrainResult:
        from multiprocessing.connection import Listener

        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        from localft.training.distributed import relay

        key = secrets.token_bytes(32)
        node = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        per_worker = {"CPU": request["num_cpus"], "memory": request["memory"]}
        use_gpu = bool(request.get("num_gpus"))
        if use_gpu:
            per_worker["GPU"] = 1
        with Listener((node, 0), authkey=key) as listener:
            host, port = listener.address
            trainer = TorchTrainer(
                _ray_train_worker,
                train_loop_config={"spec": spec, "address": f"{host}:{port}", "key": key},
                scaling_config=ScalingConfig(num_workers=processes, use_gpu=use_gpu, resources_per_worker=per_worker),
                run_config=RunConfig(storage_path=str(home / "ray-train"), name=f"{job_id}-{ids.short_suffix()}"),
            )
            outcome: list[Any] = []
            fitting = threading.Thread(target=lambda: outcome.append(_fit(trainer)), daemon=True)
            fitting.start()
            connection = _accept_while(listener, fitting, outcome)
            with connection:
                return relay(connection, sink, lambda: _lost(fitting, outcome))

    return train


def _fit(trainer: Any) -> BaseException | None:
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray Train raises where a worker failed
        return exc
    error: BaseException | None = result.error
    return error


def _lost(fitting: threading.Thread, outcome: list[Any]) -> TrainingError | None:
    """Ray Train ended without the first worker's result: a worker or its node was lost."""
    if fitting.is_alive():
        return None
    error = outcome[0] if outcome else None
    return TrainingInterrupted(f"A Ray Train worker of this job was lost ({type(error).__name__}: {error})")


def _accept_while(listener: Any, fitting: threading.Thread, outcome: list[Any]) -> Any:
    accepted: list[Any] = []
    waiting = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    waiting.start()
    while not accepted:
        lost = _lost(fitting, outcome)
        if lost is not None:
            raise lost
        waiting.join(0.2)
    return accepted[0]


def _ray_train_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: its part of the run, the first one reporting to the job's task."""
    from localft.training.distributed import report_to

    report_to(config["address"], config["key"], config["spec"])
