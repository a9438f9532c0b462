"""Wire models of `/v1/fine_tuning/jobs`, copying OpenAI's names, `object` strings and status literals."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from localft.api.protocol import Name
from localft.jobs.schema import CheckpointRecord, EventRecord, JobRecord, JobStatus

Auto = Literal["auto"]


class HyperparametersIn(BaseModel):
    """Supervised hyperparameters; ranges are checked by `localft.training.hparams.Hyperparameters`."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Auto | int | None = None
    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    max_length: Auto | int | None = Field(
        default=None, description="localft extension: tokens each training example is cut to (default: auto)."
    )
    lora_rank: Auto | int | None = Field(default=None, description="localft extension: LLMs' LoRA rank (auto: 8).")
    lora_alpha: Auto | float | None = Field(
        default=None, description="localft extension: LLMs' LoRA alpha (auto: twice the rank)."
    )
    lora_dropout: Auto | float | None = Field(
        default=None, description="localft extension: dropout on LLMs' LoRA adapters (auto: 0)."
    )
    lora_target_modules: Auto | str | list[str] | None = Field(
        default=None,
        description='localft extension: layers given a LoRA adapter, e.g. ["q_proj", "v_proj"] or "all-linear" '
        "(auto: the attention projections).",
    )
    devices: Auto | int | None = Field(
        default=None,
        description="localft extension: data-parallel processes (one per GPU) for this job (auto: the worker's "
        "default, LOCALFT_DEVICES).",
    )


class SupervisedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: HyperparametersIn | None = None


class MethodIn(BaseModel):
    """Only supervised fine-tuning exists here; DPO and reinforcement are answered with a 400."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised"] = "supervised"
    supervised: SupervisedIn | None = None


class JobCreate(BaseModel):
    """The body of `POST /v1/fine_tuning/jobs`."""

    model_config = ConfigDict(extra="forbid")

    model: Name
    training_file: Name
    validation_file: Name | None = None
    hyperparameters: HyperparametersIn | None = Field(
        default=None, description="Deprecated by OpenAI in favour of method.supervised.hyperparameters; accepted."
    )
    method: MethodIn | None = None
    suffix: Name | None = Field(default=None, min_length=1, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=2_147_483_647)
    metadata: dict[Name, Name] | None = None
    integrations: list[dict[str, Any]] | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    metadata: dict[str, str] | None
    method: dict[str, Any]
    user_provided_suffix: str | None
    worker_id: str | None = Field(
        default=None,
        description="localft extension: the worker (host:pid:random) that runs the job, or last ran it.",
    )

    @classmethod
    def of(cls, job: JobRecord) -> FineTuningJob:
        method = {"type": "supervised", "supervised": {"hyperparameters": job.hyperparameters}}
        return cls(
            id=job.id,
            created_at=job.created_at,
            error=JobError(**job.error) if job.error else None,
            fine_tuned_model=job.fine_tuned_model,
            finished_at=job.finished_at,
            hyperparameters=job.hyperparameters,
            model=job.model,
            organization_id=job.organization_id,
            result_files=job.result_files,
            seed=job.seed,
            status=job.status,
            trained_tokens=job.trained_tokens,
            training_file=job.training_file,
            validation_file=job.validation_file,
            estimated_finish=job.estimated_finish,
            metadata=job.metadata,
            method=method,
            user_provided_suffix=job.suffix,
            worker_id=job.worker_id,
        )


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None

    @classmethod
    def of(cls, event: EventRecord) -> FineTuningJobEvent:
        return cls(
            id=event.id,
            created_at=event.created_at,
            level=event.level,
            message=event.message,
            type=event.type,
            data=event.data,
        )


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int

    @classmethod
    def of(cls, record: CheckpointRecord) -> FineTuningJobCheckpoint:
        return cls(
            id=record.id,
            created_at=record.created_at,
            fine_tuned_model_checkpoint=record.model_id,
            fine_tuning_job_id=record.job_id,
            metrics=record.metrics,
            step_number=record.step_number,
        )
