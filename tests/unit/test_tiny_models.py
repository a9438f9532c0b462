"""The tiny model fixtures are real transformers models that load, tokenize and run offline."""

from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer


def test_tiny_causal_lm_loads_and_runs_chat_template(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "the flight was great"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == text
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))


def test_tiny_encoder_loads(tiny_encoder: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    model = AutoModel.from_pretrained(tiny_encoder)
    batch = tokenizer(["my bag was lost", "great flight"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[0] == 2 and hidden.shape[-1] == 32
