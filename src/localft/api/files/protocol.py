"""Wire models of `/v1/files`, named as in OpenAI's `FileObject`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from localft.jobs.schema import FileRecord

UPLOAD_PURPOSES = ("fine-tune", "evals", "batch", "assistants", "vision", "user_data")
"""Purposes a caller may upload with; `fine-tune-results` files are made by jobs only."""


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None

    @classmethod
    def of(cls, record: FileRecord) -> FileObject:
        return cls(
            id=record.id,
            bytes=record.bytes,
            created_at=record.created_at,
            filename=record.filename,
            purpose=record.purpose,
            status="processed",
        )
