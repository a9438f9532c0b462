"""Wire shapes shared by every resource: OpenAI's cursor page, deletion answer and error envelope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Generic, Literal, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Name = Annotated[str, AfterValidator(_no_nul)]
"""A string that names something stored (an id, a model, a metadata key): no NUL, which PostgreSQL cannot hold."""


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


if TYPE_CHECKING:
    # mypy checks that every page item has an `id` (what `CursorPage.of` reads); at run time the TypeVar stays
    # unbound because pydantic cannot build a schema for a Protocol bound.
    T = TypeVar("T", bound=_HasId)
else:
    T = TypeVar("T")


class CursorPage(BaseModel, Generic[T]):
    """`{"object": "list", "data": [...], "has_more": ...}`; the SDK asks for the next page with `after=<last id>`."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def of(cls, items: Sequence[T], has_more: bool) -> CursorPage[T]:
        """A page of `items` in the order served, with the ids of its first and last item (None when empty)."""
        return cls(
            data=list(items),
            has_more=has_more,
            first_id=items[0].id if items else None,
            last_id=items[-1].id if items else None,
        )


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope, the body of every error status."""

    error: ErrorDetail
