"""Rendering conversations the way training did, and continuing a partial assistant answer."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from localft.base_models.templates import (
    PLAIN_GENERATION_PROMPT,
    encoder_text,
    end_of_turn,
    render_prompt,
    template_kind,
)
from localft.inference.prompt import continuation, shared_prefix_text


@pytest.mark.parametrize(
    ("prefix", "body", "partial", "expected"),
    [
        ("", "cited", "", "cited"),
        ("Case Outcome: ", "cited", "", "Case Outcome: cited"),
        ("Case Outcome: ", "cited", "Case Outcome:", " cited"),
        ("Case Outcome: ", "cited", "Case Outcome: ", "cited"),
        ("", "cited", "Answer:", " cited"),
        ("", "cited", "Answer: ", "cited"),
        ("Case Outcome: ", "cited", "Verdict:", " cited"),
    ],
)
def test_continuation_after_partial_answer(prefix: str, body: str, partial: str, expected: str) -> None:
    assert continuation(prefix, body, partial) == expected


def test_chat_template_prompt_continues_partial_assistant_message(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "my bag was lost"},
        {"role": "assistant", "content": "Case Outcome:"},
    ]
    prompt = render_prompt(tokenizer, messages, template_kind(tokenizer))
    assert prompt.text.endswith("<|im_start|>assistant\nCase Outcome:")
    assert prompt.partial == "Case Outcome:"
    assert "<|im_end|>\n<|im_start|>assistant\nCase" in prompt.text  # no closed empty assistant turn
    assert not prompt.add_special_tokens


def test_plain_template_for_models_without_one(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    tokenizer.chat_template = None
    assert template_kind(tokenizer) == "plain"
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "bye"},
    ]
    prompt = render_prompt(tokenizer, messages, "plain")
    expected = "Classify.\n\n### User:\nhi\n\n### Assistant:\npositive<|im_end|>\n\n### User:\nbye\n\n"
    assert prompt.text == expected + PLAIN_GENERATION_PROMPT
    assert prompt.add_special_tokens
    assert end_of_turn(tokenizer, "plain") == "<|im_end|>"


@pytest.mark.parametrize("kind", ["model", "plain"])
def test_shared_prefix_ends_where_the_last_user_text_starts(tiny_causal_lm: Path, kind: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    few_shot = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "positive"},
        {"role": "user", "content": "my bag was lost"},
    ]
    for messages in (few_shot, few_shot[-1:], [*few_shot, {"role": "assistant", "content": "Answer:"}]):
        prefix = shared_prefix_text(tokenizer, messages, kind)  # type: ignore[arg-type]
        prompt = render_prompt(tokenizer, messages, kind)  # type: ignore[arg-type]
        assert prefix and prompt.text[len(prefix) :].startswith("my bag was lost")
    assert shared_prefix_text(tokenizer, [{"role": "assistant", "content": "x"}], "model") == ""


def test_end_of_turn_from_chat_template(tiny_causal_lm: Path) -> None:
    assert end_of_turn(AutoTokenizer.from_pretrained(tiny_causal_lm), "model") == "<|im_end|>"


def test_encoder_reads_user_text_only() -> None:
    messages = [
        {"role": "system", "content": "Classify the tweet."},
        {"role": "user", "content": [{"type": "text", "text": "great "}, {"type": "text", "text": "flight"}]},
        {"role": "assistant", "content": "Sentiment:"},
    ]
    assert encoder_text(messages) == "great flight"
