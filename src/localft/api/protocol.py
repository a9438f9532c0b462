"""Wire shapes shared by every resource: OpenAI's cursor page and deletion answer."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class CursorPage(BaseModel, Generic[T]):
    """`{"object": "list", "data": [...], "has_more": ...}`; the SDK asks for the next page with `after=<last id>`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool
