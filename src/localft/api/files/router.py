"""Routes of `/v1/files`: HTTP in, one service call, HTTP out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from localft.api.auth import caller_of
from localft.api.files.protocol import FileObject
from localft.api.files.service import FileService
from localft.api.protocol import CursorPage, Deleted

router = APIRouter(tags=["files"])


def _service(request: Request) -> FileService:
    service: FileService = request.app.state.files
    return service


@router.post("/files", response_model=FileObject)
def upload_file(request: Request, file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()]) -> FileObject:
    """Upload a file (multipart `file` + `purpose`). Fine-tune files must be JSON Lines, whatever their name."""
    return _service(request).upload(file.file, file.filename or "file", purpose, caller_of(request).project)


@router.get("/files", response_model=CursorPage[FileObject])
def list_files(
    request: Request,
    purpose: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
) -> CursorPage[FileObject]:
    return _service(request).list(purpose, order, after, limit, caller_of(request).scope)


@router.get("/files/{file_id}", response_model=FileObject)
def retrieve_file(request: Request, file_id: str) -> FileObject:
    return _service(request).retrieve(file_id, caller_of(request).scope)


@router.delete("/files/{file_id}", response_model=Deleted)
def delete_file(request: Request, file_id: str) -> Deleted:
    return _service(request).delete(file_id, caller_of(request).scope)


@router.get("/files/{file_id}/content", response_class=Response)
def file_content(
    request: Request,
    file_id: str,
    format: Annotated[
        Literal["base64", "csv"] | None,
        Query(description="Result files are base64 like OpenAI's; `format=csv` returns the plain CSV."),
    ] = None,
) -> Response:
    """The file's bytes. Result files (`fine-tune-results`) are base64-encoded CSV, as OpenAI serves them."""
    data, media_type = _service(request).content(file_id, format == "csv", caller_of(request).scope)
    return Response(content=data, media_type=media_type)


@router.get("/files/{file_id}/validation")
def validate_file(
    request: Request,
    file_id: str,
    model: Annotated[
        str | None,
        Query(description="A base model whose tokenizer counts the tokens; default: the documented estimate."),
    ] = None,
) -> dict[str, object]:
    """localft extension: the validation report of a fine-tune file (problems with line, code, field and fix;
    label distribution; tokens; what `n_epochs: "auto"` resolves to), from the same checks `localft validate`
    and job creation run. A sync route, so FastAPI runs a long validation in its threadpool."""
    return _service(request).validation(file_id, model, caller_of(request).scope)
