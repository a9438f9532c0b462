"""File logic: purpose and content checks, streaming to disk under a size limit, pages, downloads, validation.

Every method takes the caller's project (`None`: all projects): a file of another project reads as missing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import BinaryIO, Literal

from localft.api.files.protocol import UPLOAD_PURPOSES, FileObject
from localft.api.protocol import CursorPage, Deleted
from localft.errors import InvalidRequestError, LocalftError
from localft.jobs.files import FileStorage

_CHUNK = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


class FileService:
    def __init__(self, storage: FileStorage, max_upload_bytes: int) -> None:
        self.storage = storage
        self.max_upload_bytes = max_upload_bytes

    def upload(self, stream: BinaryIO, filename: str, purpose: str, project: str | None) -> FileObject:
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequestError(
                f"Invalid purpose {purpose!r}: use one of {', '.join(UPLOAD_PURPOSES)}.", param="purpose"
            )
        record = self.storage.save(
            _chunks(stream), filename=filename, purpose=purpose, max_bytes=self.max_upload_bytes, project=project
        )
        if purpose == "fine-tune":
            # The legacy SDK names every upload "file", so the content decides, never the extension.
            problem = _jsonl_problem(self.storage.path(record).open("rb"))
            if problem:
                self.storage.delete(record.id)
                raise InvalidRequestError(
                    f"Invalid file format for Fine-Tuning API. Must be .jsonl: {problem}", param="file"
                )
        return FileObject.of(record)

    def list(
        self, purpose: str | None, order: Literal["asc", "desc"], after: str | None, limit: int, project: str | None
    ) -> CursorPage[FileObject]:
        page = self.storage.store.list_files(
            purpose=purpose, after=after, limit=limit, newest_first=order == "desc", project=project
        )
        return CursorPage[FileObject].of([FileObject.of(r) for r in page.data], page.has_more)

    def retrieve(self, file_id: str, project: str | None) -> FileObject:
        return FileObject.of(self.storage.store.get_file(file_id, project))

    def delete(self, file_id: str, project: str | None) -> Deleted:
        self.storage.delete(file_id, project)
        return Deleted(id=file_id, object="file", deleted=True)

    def content(self, file_id: str, raw: bool, project: str | None) -> tuple[bytes, str]:
        """The bytes and media type. Result files come base64-encoded, as OpenAI serves them, unless `raw`."""
        record, data = self.storage.read(file_id, project)
        if record.purpose == "fine-tune-results":
            return (data, "text/csv") if raw else (base64.b64encode(data), "application/octet-stream")
        return data, "application/octet-stream"

    def validation(self, file_id: str, model: str | None, project: str | None) -> dict[str, object]:
        """`localft.data.validate`'s report on a stored fine-tune file, the same checks `localft validate` and job
        creation run. Tokens are counted with `model`'s tokenizer when given, else estimated (the report says which).
        """
        from localft.data.tokens import APPROXIMATE, model_tokens
        from localft.data.validate import validate_file
        from localft.training.auto import training_budget

        record = self.storage.store.get_file(file_id, project)
        if record.purpose != "fine-tune":
            raise InvalidRequestError(
                f"File {file_id} has purpose {record.purpose!r}; only 'fine-tune' files are validated.",
                param="file_id",
                code="invalid_file_purpose",
            )
        tokens = APPROXIMATE
        if model is not None:
            try:
                tokens = model_tokens(model)
            except (LocalftError, OSError, ValueError) as exc:
                message = exc.message if isinstance(exc, LocalftError) else str(exc)
                raise InvalidRequestError(f"Cannot load the tokenizer of {model!r}: {message}", param="model") from exc
        report = validate_file(
            self.storage.path(record),
            count_tokens=tokens.count,
            max_tokens=tokens.context,
            tokenizer_name=tokens.name,
            budget=training_budget(tokens.family),
        )
        # The caller knows the file by id and name; the server's storage path is none of its business.
        return {**report.to_dict(), "path": record.filename, "file_id": record.id}


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _jsonl_problem(stream: BinaryIO) -> str | None:
    """Why the bytes are not JSON Lines (first bad line), or None. Deeper checks run when a job starts."""
    with stream:
        seen = False
        for number, raw_line in enumerate(stream, start=1):
            line = raw_line.strip()
            if not line:
                continue
            if number == 1:
                line = line.removeprefix(_BOM)  # what Windows editors write first; OpenAI's tools read utf-8-sig
            try:
                json.loads(line)
            except (UnicodeDecodeError, ValueError) as exc:
                return f"line {number} is not valid JSON ({exc})."
            seen = True
    return None if seen else "the file is empty."
