"""Models: the built-in base models, their OpenAI aliases, and fine-tuned models (and their checkpoints).

Base models are shared by every project; a fine-tuned model and its checkpoints belong to the project of the job
that made them, and read as missing to others. Deleting a fine-tuned model deletes its checkpoints too (the same
training's weights, served under other ids): their records, their weights in the inference engine's memory and on
disk, and the job's `fine_tuned_model`. Base models are not deletable (400). Exporting (a localft extension) writes
a fine-tuned model or checkpoint as a zip of the folder `localft.export` makes; base models are theirs already (400).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from localft.api.models.protocol import Model, ModelList
from localft.api.protocol import Deleted
from localft.base_models import is_known, list_base_models
from localft.errors import InvalidRequestError, NotFoundError
from localft.jobs.registry import resolve_model
from localft.jobs.store import Store

# Base models have no creation date of their own; this is localft's first release (2026-01-01).
_BASE_CREATED = 1_767_225_600


class ModelService:
    def __init__(
        self, store: Store, home: Path, jobs_dir: Path, evict: Callable[[Path], None], cache_dir: Path | None = None
    ) -> None:
        self.store = store
        self.home = home
        self.jobs_dir = jobs_dir
        self.evict = evict
        self.cache_dir = cache_dir or home / "cache"

    def list(self, project: str | None) -> ModelList:
        data = [Model(id=spec.name, created=_BASE_CREATED, owned_by="localft") for spec in list_base_models()]
        data += [Model(id=m.id, created=m.created_at, owned_by=m.owned_by) for m in self.store.list_models(project)]
        return ModelList(data=data)

    def retrieve(self, model_id: str, project: str | None) -> Model:
        model = self.store.get_model(model_id, project)
        if model is not None:
            return Model(id=model.id, created=model.created_at, owned_by=model.owned_by)
        checkpoint = self.store.get_checkpoint_by_model(model_id)
        if checkpoint is not None:
            try:
                job = self.store.get_job(checkpoint.job_id, project)
            except NotFoundError:
                raise _not_found(model_id) from None
            return Model(id=model_id, created=checkpoint.created_at, owned_by=job.organization_id)
        if not model_id.startswith("ft:") and is_known(model_id):
            return Model(id=model_id, created=_BASE_CREATED, owned_by="localft")
        raise _not_found(model_id)

    def delete(self, model_id: str, project: str | None) -> Deleted:
        model = self.store.get_model(model_id, project)
        if model is None:
            if not model_id.startswith("ft:") and is_known(model_id):
                raise InvalidRequestError(
                    f"Model {model_id} is a base model and cannot be deleted; only fine-tuned (ft:...) models can.",
                    param="model",
                    code="model_not_deletable",
                )
            raise _not_found(model_id)
        checkpoints = self.store.delete_model(model, f"Fine-tuned model deleted: {model_id}")
        for folder in [self.home / model.path, *(self.home / c.path for c in checkpoints)]:
            self.evict(folder)
        shutil.rmtree(self.home / model.path, ignore_errors=True)
        shutil.rmtree(self.jobs_dir / model.job_id, ignore_errors=True)
        return Deleted(id=model_id, object="model", deleted=True)

    def export(self, model_id: str, project: str | None, fmt: str) -> Path:
        """A zip of the model's export in a temporary folder of its own (the caller deletes `zip.parent`)."""
        from localft.export import export_model, zip_folder

        artifact = resolve_model(self.store, self.home, model_id, project)
        if artifact.checkpoint is None:
            raise InvalidRequestError(
                f"Model {model_id} is a base model: only fine-tuned (ft:...) models and their checkpoints export.",
                param="model",
                code="model_not_exportable",
            )
        scratch = Path(tempfile.mkdtemp(prefix="localft-export-"))
        try:
            folder = scratch / "model"
            export_model(artifact.checkpoint, folder, self.cache_dir, fmt)
            archive = zip_folder(folder, scratch / "model.zip")
            shutil.rmtree(folder)
            return archive
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise


def _not_found(model_id: str) -> NotFoundError:
    return NotFoundError(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
