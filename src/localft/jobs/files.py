"""Uploaded and generated files: bytes on disk under `settings.files_dir`, metadata in the store.

Blob names are generated ids, never the caller's filename, so no upload can escape the folder. A blob is written
to a temporary name and renamed into place only once complete and registered, so a crash or a size-limit
rejection never leaves a half-written file behind a file id.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from localft import ids
from localft.errors import ConflictError, InvalidRequestError
from localft.jobs.schema import FileRecord
from localft.jobs.store import Store


class FileTooLargeError(InvalidRequestError):
    """An upload over the configured size limit."""


class FileStorage:
    """Save, find and delete file blobs; the store keeps their metadata."""

    def __init__(self, store: Store, files_dir: Path) -> None:
        self.store = store
        self.files_dir = files_dir

    def save(
        self,
        chunks: Iterable[bytes],
        *,
        filename: str,
        purpose: str,
        max_bytes: int | None = None,
        project: str | None = None,
    ) -> FileRecord:
        """Stream `chunks` to disk and register the file (in `project`); raises FileTooLargeError past `max_bytes`."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        file_id = ids.file_id()
        final = self.files_dir / file_id
        partial = self.files_dir / f".{file_id}.part"
        size = 0
        try:
            with partial.open("wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise FileTooLargeError(
                            f"File too large: the limit is {max_bytes} bytes (LOCALFT_MAX_UPLOAD_BYTES).",
                            param="file",
                            code="file_too_large",
                        )
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            record = FileRecord(
                id=file_id,
                created_at=int(time.time()),
                bytes=size,
                filename=_display_name(filename),
                purpose=purpose,
                status="processed",
                storage_name=file_id,
                project=project,
            )
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        try:
            self.store.add_file(record)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return record

    def save_bytes(self, data: bytes, *, filename: str, purpose: str, project: str | None = None) -> FileRecord:
        return self.save([data], filename=filename, purpose=purpose, project=project)

    def path(self, record: FileRecord) -> Path:
        return self.files_dir / record.storage_name

    def read(self, file_id: str, project: str | None = None) -> tuple[FileRecord, bytes]:
        record = self.store.get_file(file_id, project)
        return record, self.path(record).read_bytes()

    def delete(self, file_id: str, project: str | None = None) -> None:
        """Delete a file's row and bytes; refused (ConflictError, naming the job) while a job that has not ended
        reads it, since that job would fail later for want of it and lose its progress."""
        record = self.store.get_file(file_id, project)
        user = self.store.delete_unused_file(file_id)
        if user is not None:
            raise ConflictError(
                f"File {file_id} is used by fine-tuning job {user.id}, which is {user.status}: delete the file once "
                "the job has ended, or cancel the job first.",
                param="file_id",
                code="file_in_use",
            )
        self.path(record).unlink(missing_ok=True)


def _display_name(filename: str) -> str:
    """The caller's name, kept only for display: no folders, no control characters, valid text, bounded length."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).encode("utf-8", "replace").decode("utf-8").strip()
    return (name or "file")[:255]
