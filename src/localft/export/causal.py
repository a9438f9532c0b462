"""LoRA fine-tunes as a merged Hugging Face causal LM, with the adapter alone beside it.

The merged folder (`W + scale * B @ A` written into the base's weights) loads with
`AutoModelForCausalLM.from_pretrained(DIR)` and needs neither peft nor the base model; `adapter/` is for peft users
who already have the base. The tokenizer carries the chat template localft rendered prompts with (the plain one
written as Jinja for models without their own), and the generation config answers greedily, stopping at the end of
the assistant turn, as localft's label answers do.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from localft.base_models import local_model_dir
from localft.base_models.templates import end_of_turn, template_kind
from localft.errors import ModelError
from localft.export.manifest import write_manifest
from localft.training.checkpoint import CheckpointMeta

ADAPTER_FOLDER = "adapter"
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'assistant' %}### Assistant:\n{{ message['content'] }}{{ eos_token }}\n\n"
    "{% else %}### User:\n{{ message['content'] }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)
"""`base_models.templates.render_plain` in Jinja: the template localft trains models without a chat template with."""
ANSWER_SLACK_TOKENS = 8
"""Tokens a generated answer may run past the longest label (multi-label answers join several)."""


def export_causal(checkpoint: Path, meta: CheckpointMeta, out: Path, cache_dir: Path) -> None:
    """Write the merged model, its tokenizer and generation config to `out`, and the adapter to `out/adapter`."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    adapter = checkpoint / ADAPTER_FOLDER
    if not adapter.is_dir():
        raise ModelError(f"Checkpoint {checkpoint} has no {ADAPTER_FOLDER}/ folder.")
    base_dir = local_model_dir(meta.base_model, cache_dir)
    tokenizer_dir = checkpoint / "tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir if tokenizer_dir.is_dir() else base_dir)
    if template_kind(tokenizer, meta.chat_template) == "plain":
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
        meta = replace(meta, chat_template="plain")  # an import renders prompts as trained, not by the new template
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    merged: Any = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    generation = _generation_config(base_dir, tokenizer, meta, GenerationConfig)
    generation.save_pretrained(out)
    shutil.copytree(adapter, out / ADAPTER_FOLDER, dirs_exist_ok=True)
    write_manifest(out, meta, "causal_lm")


def _generation_config(base_dir: Path, tokenizer: Any, meta: CheckpointMeta, config_class: Any) -> Any:
    """Greedy decoding that stops at the end of the assistant turn, long enough for the longest answer."""
    try:
        config = config_class.from_pretrained(base_dir)
    except OSError:  # the base has none of its own
        config = config_class()
    stops = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    turn_end = end_of_turn(tokenizer, template_kind(tokenizer, meta.chat_template))
    turn_ids = tokenizer(turn_end, add_special_tokens=False)["input_ids"] if turn_end else []
    if len(turn_ids) == 1:
        stops.add(turn_ids[0])
    config.eos_token_id = sorted(stops) or None
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config.do_sample = False
    config.temperature = config.top_p = config.top_k = None
    answers = [meta.assistant_prefix + meta.label_separator.join(meta.labels)] if meta.multi_label else []
    answers += [meta.assistant_prefix + label for label in meta.labels]
    longest = max((len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers), default=16)
    config.max_new_tokens = longest + ANSWER_SLACK_TOKENS
    return config
