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
from localft.base_models import get_spec, is_known, list_base_models, resolve_alias
from localft.base_models.catalog import BUILTIN, aliases
from localft.base_models.describe import describe_builtin, describe_folder
from localft.errors import InvalidRequestError, NotFoundError
from localft.jobs.registry import resolve_model
from localft.jobs.store import Store


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
        """Built-in base models, then local folders (aliased, or trained by this project's jobs), then fine-tuned
        models."""
        data = [Model.of_base(describe_builtin(spec)) for spec in list_base_models()]
        # Folders named by LOCALFT_MODEL_ALIASES, then those the project's jobs trained, each once.
        folders = dict.fromkeys([*aliases().values(), *self.store.base_models_used(project)])
        for name in folders:
            folder = describe_folder(name) if name not in BUILTIN else None
            if folder is not None:
                data.append(Model.of_base(folder))
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
            return self._base(model_id)
        raise _not_found(model_id)

    def _base(self, model_id: str) -> Model:
        """A built-in model, an alias (described as the model it stands for, under its own id) or a folder."""
        spec = get_spec(model_id)
        info = describe_builtin(spec) if spec is not None else describe_folder(resolve_alias(model_id))
        if info is None:
            raise _not_found(model_id)
        return Model.of_base(info).model_copy(update={"id": model_id})

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
