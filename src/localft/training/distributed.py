"""One job on several devices: data-parallel processes started the way `torchrun` starts them, reporting through the
first process to the caller's sink.

`train_data_parallel` (in the caller's process) starts `processes` copies of `python -m localft.training.distributed`
with torchrun's environment (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), each on its own GPU
(`cuda:<local rank>`) or sharing the CPU's cores. Each runs `run_training` with a `parallel.DataParallel`; the first
relays its events, checkpoints and result over a local connection (`RelaySink`), and asks the caller's sink whether
to stop, so a cancel or pause reaches every process at the same step. The caller's sink sees what a one-process run
reports, in the same order: the worker and the job store do not know how many processes trained.

`train_rank` is the same per-process work for a launcher that has already joined the processes into a group (Ray
Train, `localft.jobs.ray_executor`): only the way the processes start differs.

A process that dies takes the others with it: the caller kills the rest and ends the run with the dead process's
last log lines (`<output_dir>/processes/rank-N.log`): a failure where it exited with an error, an interruption the job
resumes from (`TrainingInterrupted`) where it was killed. The processes die with their caller (Linux's parent-death
signal), so a killed worker leaves no process holding a GPU.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import os
import pickle
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from localft.devices import for_rank, gpu_count, resolve_device
from localft.errors import InvalidRequestError, LocalftError, TrainingCancelled, TrainingError, TrainingInterrupted
from localft.settings import ALL_DEVICES
from localft.training.interfaces import CheckpointInfo, EventLevel, EventSink, StepMetrics, TrainResult, TrainSpec

PARENT_ADDRESS = "LOCALFT_PARENT_ADDRESS"
"""`host:port` of the caller's connection, for the first process's reports."""
PARENT_KEY = "LOCALFT_PARENT_KEY"
"""The connection's secret (hex): only the processes the caller started can report to it."""
TRAIN_SPEC = "LOCALFT_TRAIN_SPEC"
"""The run's `TrainSpec` and additions, pickled and base64-encoded: what every process trains."""
START_TIMEOUT_S = 600.0
"""How long the first process may take to report (imports, loading the model) before the run is failed."""
DEATH_GRACE_S = 3.0
"""How long the first process's report is awaited once another process died, to tell a cause from an effect."""
EXIT_TIMEOUT_S = 60.0
"""How long the processes may take to exit once the first one has reported the end."""
LOG_TAIL_LINES = 20


def processes_for(spec: TrainSpec, device: str) -> int:
    """How many processes train `spec` on `device`: the job's `devices` hyperparameter, else the worker's default;
    `all` is every GPU. A GPU count the machine does not have is the job's error, with the count it has."""
    asked = spec.hyperparameters.devices
    wanted = spec.devices if asked == "auto" else asked
    on_gpus = device.startswith("cuda")
    if wanted == ALL_DEVICES:
        return max(1, gpu_count()) if on_gpus else 1
    if on_gpus and wanted > gpu_count():
        raise InvalidRequestError(
            f"The job asks for {wanted} devices, but this worker sees {gpu_count()} GPU(s). Ask for at most "
            f"{gpu_count()}, or run it where there are more (a Ray cluster, `localft serve --executor ray`).",
            param="hyperparameters.devices" if asked != "auto" else None,
            code="invalid_hyperparameters",
        )
    return wanted


# --- the caller's side -----------------------------------------------------------------------------------------


def train_data_parallel(
    spec: TrainSpec, sink: EventSink, processes: int, device: str, additions: Any = None
) -> TrainResult:
    """Train `spec` in `processes` data-parallel processes on `device` (see the module docstring); `additions` as
    `run.run_training` takes them."""
    key = secrets.token_bytes(32)
    logs = spec.output_dir / "processes"
    logs.mkdir(parents=True, exist_ok=True)
    with Listener(("127.0.0.1", 0), authkey=key) as listener:
        host, port = listener.address
        env = {
            **os.environ,
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(_free_port()),
            "WORLD_SIZE": str(processes),
            "LOCAL_WORLD_SIZE": str(processes),
            PARENT_ADDRESS: f"{host}:{port}",
            PARENT_KEY: key.hex(),
            TRAIN_SPEC: base64.b64encode(pickle.dumps((replace(spec, device=device), additions))).decode(),
        }
        started = []
        for rank in range(processes):
            with (logs / f"rank-{rank}.log").open("wb") as log:  # the process keeps its own copy of the handle
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "localft.training.distributed"],
                        env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        try:
            connection = _accept(listener, started, logs)
            with connection:
                return relay(connection, sink, lambda: _dead(started, logs))
        finally:
            _end(started)


def relay(connection: Connection, sink: EventSink, dead: Callable[[], TrainingError | None]) -> TrainResult:
    """Pass the first process's reports to `sink` until it sends the run's result (returned) or error (raised).
    `dead` says whether a process died meanwhile: the run then fails with that process's last lines, unless the
    first process reports an error of localft's own (bad data, a bad hyperparameter), which every process would have
    met."""
    while True:
        if not connection.poll(0.5):
            died = dead()
            if died is not None and not connection.poll(DEATH_GRACE_S):
                raise died
            continue
        kind, *payload = connection.recv()
        if kind == "log":
            sink.log(*payload)
        elif kind == "metrics":
            sink.log_metrics(*payload)
        elif kind == "checkpoint":
            sink.on_checkpoint(*payload)
        elif kind == "stop?":
            connection.send(sink.should_stop())
        elif kind == "done":
            result: TrainResult = payload[0]
            return result
        else:  # "failed"
            error: BaseException = payload[0]
            if isinstance(error, LocalftError):
                raise error
            time.sleep(DEATH_GRACE_S)  # another process's death is the cause, and a collective failed over it
            raise dead() or error


def _accept(listener: Listener, started: list[subprocess.Popen[bytes]], logs: Path) -> Connection:
    """The first process's connection, once it makes it (or an error, if a process dies or it takes too long)."""
    accepted: list[Connection] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not accepted:
        died = _dead(started, logs)
        if died is not None:
            raise died
        if time.monotonic() > deadline:
            raise TrainingError(f"The data-parallel processes did not start within {START_TIMEOUT_S:.0f} s.")
        thread.join(0.2)
    return accepted[0]


def _dead(started: list[subprocess.Popen[bytes]], logs: Path) -> TrainingError | None:
    """The error of a process found dead with a failure, if any: one killed by a signal first (the others then fail
    in their collectives with it), else the lowest rank."""
    failed = [(rank, code) for rank, process in enumerate(started) if (code := process.poll()) not in (None, 0)]
    if not failed:
        return None
    rank, code = min(failed, key=lambda item: (item[1] >= 0, item[0]))
    tail = _tail(logs / f"rank-{rank}.log")
    # Killed by a signal (the kernel's OOM killer, an operator) is an interruption the job resumes from; an error
    # exit is the run's failure.
    error = TrainingInterrupted if code < 0 else TrainingError
    return error(f"Data-parallel process {rank} of {len(started)} exited with code {code}; its last lines:\n{tail}")


def _end(started: list[subprocess.Popen[bytes]]) -> None:
    """Wait for the processes to exit, then kill what is left (a process stuck in a collective with a dead one)."""
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, deadline - time.monotonic()))
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- each process ----------------------------------------------------------------------------------------------


class RelaySink:
    """The first process's `EventSink`: each report goes to the caller's sink over the connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def log(self, message: str, level: EventLevel = "info") -> None:
        self.connection.send(("log", message, level))

    def log_metrics(self, metrics: StepMetrics) -> None:
        self.connection.send(("metrics", metrics))

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        self.connection.send(("checkpoint", checkpoint))

    def should_stop(self) -> bool:
        self.connection.send(("stop?",))
        answer: bool = self.connection.recv()
        return answer


class QuietSink:
    """The other processes' sink: the first process reports for all of them."""

    def log(self, message: str, level: EventLevel = "info") -> None:
        return None

    def log_metrics(self, metrics: StepMetrics) -> None:
        return None

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        return None

    def should_stop(self) -> bool:
        return False


def train_rank(spec: TrainSpec, report: Callable[[], EventSink], additions: Any = None) -> TrainResult:
    """This process's part of a data-parallel run, in a process group that torchrun's environment describes (joined
    here unless the launcher joined it already); `report` makes the first process's sink."""
    import torch
    import torch.distributed as dist

    from localft.base_models import use_threads
    from localft.training.parallel import DataParallel
    from localft.training.run import run_training

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = for_rank(resolve_device(spec.device), local_rank)
    joined_here = not dist.is_initialized()
    if joined_here:
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device == "cpu" and "LOCALFT_THREADS" not in os.environ:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
        use_threads(max(1, (os.cpu_count() or 1) // local))  # the processes of a machine share its cores
    try:
        sink = report() if dist.get_rank() == 0 else QuietSink()
        return run_training(replace(spec, device=device), sink, additions, parallel=DataParallel(device))
    finally:
        if joined_here:
            dist.destroy_process_group()


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the process that started it dies (a no-op elsewhere)."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def report_to(address: str, key: bytes, spec: TrainSpec, additions: Any = None) -> None:
    """Train this process's part of `spec`; the first process reports to the caller at `address` (`host:port`),
    ending with the run's result or error. Raises what training raised, after reporting it."""
    connection: Connection | None = None

    def report() -> EventSink:
        nonlocal connection
        host, _, port = address.rpartition(":")
        connection = Client((host, int(port)), authkey=key)
        return RelaySink(connection)

    try:
        result = train_rank(spec, report, additions)
    except BaseException as exc:
        if connection is not None:
            connection.send(("failed", _picklable(exc)))
            connection.close()
        raise
    if connection is not None:
        connection.send(("done", result))
        connection.close()


def main() -> None:
    """The entry point of each process `train_data_parallel` starts."""
    _die_with_parent()
    spec, additions = pickle.loads(base64.b64decode(os.environ[TRAIN_SPEC]))
    try:
        report_to(os.environ[PARENT_ADDRESS], bytes.fromhex(os.environ[PARENT_KEY]), spec, additions)
    except TrainingCancelled as exc:
        raise SystemExit(0) from exc
    except BaseException as exc:
        traceback.print_exc()  # into this process's log, whose last lines a failed run shows
        raise SystemExit(1) from exc


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return TrainingError(f"Training failed: {type(exc).__name__}: {exc}")
    return exc


if __name__ == "__main__":
    main()
