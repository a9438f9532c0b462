"""What the Models page and `/v1/models` say about a base model: its family, size, whether it is installed here
and since when. Built-in models are described by the catalog; a local folder by its own config and files."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from localft.base_models.catalog import BaseModelSpec, Family, is_model_folder
from localft.base_models.family import model_family
from localft.base_models.fetch import is_installed

_WEIGHTS = ("*.safetensors", "*.bin", "*.gguf", "*.pt")


@dataclass(frozen=True)
class BaseModelInfo:
    name: str
    family: Family | None
    """None for a folder whose config cannot be read."""
    params: str | None
    """The catalog's parameter count ("135M"), or a folder's weights on disk ("87 MB")."""
    installed: bool
    installed_at: int | None
    """When the weights arrived on this machine (Unix seconds): a package's install time, a folder's last change."""
    description: str
    source: str
    """"builtin" or "folder"."""


def describe_builtin(spec: BaseModelSpec) -> BaseModelInfo:
    installed = is_installed(spec)
    return BaseModelInfo(
        name=spec.name,
        family=spec.family,
        params=spec.params,
        installed=installed,
        installed_at=_package_installed_at(spec.packages[0]) if installed else None,
        description=spec.description,
        source="builtin",
    )


def describe_folder(path: str) -> BaseModelInfo | None:
    """A local Hugging Face folder used as a base model, or None where the folder is gone."""
    if not is_model_folder(path):
        return None
    folder = Path(path).expanduser()
    try:
        family: Family | None = model_family(path, folder)
    except (OSError, ValueError):
        family = None  # an unreadable or unknown config: listed, but without a family
    weights = sum(f.stat().st_size for pattern in _WEIGHTS for f in folder.glob(pattern))
    return BaseModelInfo(
        name=path,
        family=family,
        params=_size(weights) if weights else None,
        installed=True,
        installed_at=int((folder / "config.json").stat().st_mtime),
        description="Local Hugging Face folder",
        source="folder",
    )


def _size(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}" if unit == "GB" else f"{n_bytes / scale:,.0f} {unit}"
    return f"{max(1, round(n_bytes / 1e3))} KB"


def _package_installed_at(package: str) -> int | None:
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    # The package's metadata files are written when pip installs it.
    for file in files:
        if file.name == "METADATA":
            located = Path(str(file.locate()))
            return int(located.stat().st_mtime) if located.exists() else None
    return None
