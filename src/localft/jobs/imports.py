"""Imported models: an exported folder (`localft.export`) copied into the data folder as a checkpoint and listed as a
fine-tuned model, so the server answers with it as it answered before the export.

An import has no job: its record's `job_id` is `import-...`, which names no job folder, so deleting the model
deletes only its own weights.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from localft import ids
from localft.export.importing import checkpoint_from_export
from localft.jobs.registry import fine_tuned_model_name
from localft.jobs.schema import ModelRecord
from localft.jobs.store import Store
from localft.settings import Settings

IMPORT_PREFIX = "import-"
DEFAULT_SUFFIX = "imported"


def import_folder(
    store: Store, settings: Settings, folder: Path, suffix: str | None = None, project: str | None = None
) -> ModelRecord:
    """Copy an exported folder in as a checkpoint of the models folder and record it as a fine-tuned model."""
    key = f"{IMPORT_PREFIX}{ids.short_suffix().lower()}"
    dest = settings.models_dir / key
    try:
        meta = checkpoint_from_export(folder, dest, settings.cache_dir)
        record = ModelRecord(
            id=fine_tuned_model_name(meta.base_model, settings.organization, suffix or DEFAULT_SUFFIX),
            created_at=int(time.time()),
            owned_by=settings.organization,
            job_id=key,
            base_model=meta.base_model,
            path=str(dest.relative_to(settings.home)),
            project=project,
        )
        store.add_model(record)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return record
