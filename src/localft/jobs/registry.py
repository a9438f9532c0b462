"""Model ids: naming fine-tuned models and resolving any servable id to what the inference engine loads.

A servable id is a base model (built-in name, OpenAI alias or local Hugging Face folder), a fine-tuned model
(`ft:{base}:{org}:{suffix}:{8 chars}`) or one of its checkpoints (`...:ckpt-step-N`). Base models serve every
project; fine-tuned models and checkpoints only the project of the job that made them.
"""

from __future__ import annotations

import re
from pathlib import Path

from localft import ids
from localft.base_models import is_known, resolve_alias
from localft.errors import NotFoundError
from localft.inference.types import ModelArtifact
from localft.jobs.store import Store

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def display_base(base_model: str) -> str:
    """The base slot of an `ft:` id: the built-in name, or a folder's name made safe (no ':' or '/')."""
    name = Path(base_model).name if ("/" in base_model or "\\" in base_model) else base_model
    return _UNSAFE.sub("-", name).strip("-") or "model"


def fine_tuned_model_name(base_model: str, organization: str, suffix: str | None) -> str:
    """`ft:{base}:{org}:{suffix}:{8 chars}`; with no suffix the slot stays empty, as OpenAI does."""
    return f"ft:{display_base(base_model)}:{organization}:{suffix or ''}:{ids.short_suffix()}"


def checkpoint_model_name(model_name: str, step: int) -> str:
    return f"{model_name}:ckpt-step-{step}"


def resolve_model(store: Store, home: Path, model_id: str, project: str | None = None) -> ModelArtifact:
    """What to load for `model_id` (as `project` sees it: None sees all); NotFoundError (code `model_not_found`)
    when it names nothing servable."""
    model = store.get_model(model_id, project)
    if model is not None:
        return ModelArtifact(model_id=model_id, base_model=model.base_model, checkpoint=home / model.path)
    checkpoint = store.get_checkpoint_by_model(model_id)
    if checkpoint is not None:
        try:
            job = store.get_job(checkpoint.job_id, project)
        except NotFoundError:
            raise model_not_found(model_id) from None
        return ModelArtifact(model_id=model_id, base_model=job.base_model, checkpoint=home / checkpoint.path)
    if not model_id.startswith("ft:") and is_known(model_id):
        return ModelArtifact(model_id=model_id, base_model=resolve_alias(model_id))
    raise model_not_found(model_id)


def model_not_found(model_id: str) -> NotFoundError:
    return NotFoundError(
        f"The model `{model_id}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )
