"""Wire models of `/v1/models`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from localft.base_models.describe import BaseModelInfo


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    """For a base model: when its weights were installed on this server (0 while they are not)."""
    owned_by: str
    family: Literal["causal_lm", "encoder"] | None = Field(
        default=None, description="localft extension, base models: an LLM (causal_lm) or an encoder."
    )
    params: str | None = Field(
        default=None, description="localft extension, base models: parameter count, or a folder's weights on disk."
    )
    installed: bool | None = Field(
        default=None,
        description="localft extension, base models: whether the weights are on this server "
        "(`localft models pull NAME` installs a missing one).",
    )
    description: str | None = Field(default=None, description="localft extension, base models: what it is.")
    source: Literal["builtin", "folder"] | None = Field(
        default=None, description="localft extension, base models: the built-in catalog or a local folder."
    )

    @classmethod
    def of_base(cls, info: BaseModelInfo) -> Model:
        return cls(
            id=info.name,
            created=info.installed_at or 0,
            owned_by="localft" if info.source == "builtin" else "user",
            family=info.family,
            params=info.params,
            installed=info.installed,
            description=info.description,
            source="builtin" if info.source == "builtin" else "folder",
        )


class ModelList(BaseModel):
    """Not paginated, like OpenAI's."""

    object: Literal["list"] = "list"
    data: list[Model]
