"""A base model's family: a causal LM (trained with LoRA, answers by scoring its labels) or an encoder (trained with
a classification head), and how many positions it has. Training, job scheduling and validation reports all ask here,
so they agree."""

from __future__ import annotations

from pathlib import Path

from localft.base_models.catalog import Family, get_spec

_DECODER_TYPES = frozenset({"llama", "gemma", "gemma2", "gemma3_text", "qwen2", "mistral", "phi3", "gpt2", "smollm3"})


def model_family(name: str, model_dir: Path) -> Family:
    """A built-in model's family from the catalog; a folder's from its config (`*ForCausalLM` or an encoder)."""
    builtin = get_spec(name)
    if builtin is not None:
        return builtin.family
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_dir)
    architectures = list(getattr(config, "architectures", None) or [])
    if any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in architectures):
        return "causal_lm"
    if getattr(config, "is_decoder", False) or getattr(config, "model_type", "") in _DECODER_TYPES:
        return "causal_lm"
    return "encoder"


def model_positions(model_dir: Path) -> int | None:
    """The most tokens the model's position embeddings cover (its config's `max_position_embeddings`), if it says."""
    from transformers import AutoConfig

    positions = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", None)
    return positions if isinstance(positions, int) and positions > 0 else None
