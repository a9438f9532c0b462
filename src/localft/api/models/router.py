"""Routes of `/v1/models`. Ids may hold ':' and '/' (fine-tuned ids, local folders), hence `:path`; the export
route comes first, so `.../export` is not read as part of an id."""

from __future__ import annotations

import shutil
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from localft.api.auth import caller_of
from localft.api.models.protocol import Model, ModelList
from localft.api.models.service import ModelService
from localft.api.protocol import Deleted

router = APIRouter(prefix="/models", tags=["models"])


def _service(request: Request) -> ModelService:
    service: ModelService = request.app.state.models
    return service


@router.get("", response_model=ModelList)
def list_models(request: Request) -> ModelList:
    """Built-in base models, then fine-tuned models."""
    return _service(request).list(caller_of(request).scope)


@router.get("/{model_id:path}/export", response_class=FileResponse)
def export_model(
    request: Request,
    model_id: str,
    format: Literal["hf", "onnx"] = Query("hf", description="`hf`: a Hugging Face folder; `onnx`: encoders only."),
) -> FileResponse:
    """A fine-tuned model as a zip of a folder Hugging Face (or ONNX Runtime) loads; a localft extension."""
    archive = _service(request).export(model_id, caller_of(request).scope, format)
    name = model_id.replace(":", "_").replace("/", "_") + ("-onnx" if format == "onnx" else "") + ".zip"
    cleanup = BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True)
    return FileResponse(archive, media_type="application/zip", filename=name, background=cleanup)


@router.get("/{model_id:path}", response_model=Model)
def retrieve_model(request: Request, model_id: str) -> Model:
    return _service(request).retrieve(model_id, caller_of(request).scope)


@router.delete("/{model_id:path}", response_model=Deleted)
def delete_model(request: Request, model_id: str) -> Deleted:
    """Delete a fine-tuned model, its checkpoints and their weights; base models answer 400."""
    return _service(request).delete(model_id, caller_of(request).scope)
