"""Reading chat JSONL and turning conversations into token ids with a loss mask on the answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from localft.errors import DataValidationError
from localft.training.dataset import IGNORE, ChatEncoder, Encoded, read_examples, truncate

from .conftest import chat, write_jsonl


@pytest.fixture(scope="module")
def tokenizer(tiny_causal_lm: Path) -> object:
    return AutoTokenizer.from_pretrained(tiny_causal_lm)


def trained_text(tokenizer: object, encoded: Encoded) -> str:
    return tokenizer.decode([t for t in encoded.labels if t != IGNORE])  # type: ignore[attr-defined]


def test_reads_chat_and_legacy_prompt_completion(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [chat("hi", "positive"), {"prompt": "bag lost ->", "completion": " neg"}])
    first, second = read_examples(path)
    assert first.answer == "positive" and first.context[-1] == {"role": "user", "content": "hi"}
    assert second.answer == " neg" and second.line == 2


def test_bad_lines_name_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{oops\n')
    with pytest.raises(DataValidationError, match="line 2 is not valid JSON"):
        read_examples(path)
    path.write_text('{"messages": [{"role": "user", "content": "a"}]}\n')
    with pytest.raises(DataValidationError, match="line 1 has no assistant message"):
        read_examples(path)


def test_loss_covers_the_answer_and_end_of_turn_only(tokenizer: object) -> None:
    encoder = ChatEncoder(tokenizer, "model", max_length=512)
    encoded = encoder.encode(chat("the flight was great", "positive")["messages"])
    assert trained_text(tokenizer, encoded) == "positive<|im_end|>"
    assert encoded.labels[0] == IGNORE and encoded.n_targets > 0


def test_weight_zero_answers_are_not_trained(tokenizer: object) -> None:
    messages = [
        {"role": "user", "content": "gate"},
        {"role": "assistant", "content": "neutral", "weight": 0},
        {"role": "user", "content": "bag lost"},
        {"role": "assistant", "content": "negative"},
    ]
    encoded = ChatEncoder(tokenizer, "model", max_length=512).encode(messages)
    assert trained_text(tokenizer, encoded) == "negative<|im_end|>"
    messages[1]["weight"] = 1
    encoded = ChatEncoder(tokenizer, "model", max_length=512).encode(messages)
    assert trained_text(tokenizer, encoded) == "neutral<|im_end|>negative<|im_end|>"


def test_plain_template_for_models_without_one(tokenizer: object) -> None:
    encoder = ChatEncoder(tokenizer, "plain", max_length=512)
    text, spans, special = encoder.render(chat("my bag", "negative", system="Classify.")["messages"])
    assert text == "Classify.\n\n### User:\nmy bag\n\n### Assistant:\nnegative<|im_end|>"
    assert [text[s:e] for s, e in spans] == ["negative<|im_end|>"] and special


def test_truncation_drops_the_middle_of_the_input_never_the_answer(tokenizer: object) -> None:
    long_text = " ".join(["the flight was great thanks"] * 40)
    encoder = ChatEncoder(tokenizer, "model", max_length=48)
    encoded = encoder.encode(chat(long_text, "negative")["messages"])
    full = ChatEncoder(tokenizer, "model", max_length=10_000).encode(chat(long_text, "negative")["messages"])
    assert len(encoded) == 48 < len(full)
    assert trained_text(tokenizer, encoded) == "negative<|im_end|>"
    assert encoded.input_ids[:10] == full.input_ids[:10]  # the system prompt's start survives
    assert encoded.input_ids[-20:] == full.input_ids[-20:]  # and the end of the input with the answer


def test_an_answer_longer_than_the_limit_keeps_its_beginning() -> None:
    encoded = Encoded(list(range(30)), [IGNORE] * 10 + list(range(10, 30)))
    cut = truncate(encoded, 12)
    assert len(cut) == 12 and cut.input_ids[1:4] == [10, 11, 12]


def test_prompt_and_answers_split_shared_tokens_as_prompt(tokenizer: object) -> None:
    encoder = ChatEncoder(tokenizer, "model", max_length=512)
    context = chat("my bag", "x")["messages"][:-1]
    prompt, answers = encoder.prompt_and_answers(context, ["positive", "negative"])
    assert tokenizer.decode(prompt).endswith("assistant\n")  # type: ignore[attr-defined]
    assert [tokenizer.decode(a) for a in answers] == ["positive<|im_end|>", "negative<|im_end|>"]  # type: ignore[attr-defined]
