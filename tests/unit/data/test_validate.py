"""validate_file on the shipped bad files: one per error kind, exact codes, fields, messages and lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localft.data.validate import MAX_PROBLEMS_PER_CODE, validate_file
from localft.errors import DataValidationError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data"

# file -> (line, code, field, message) of its single error; every file otherwise holds 11 valid examples.
ERRORS = {
    "invalid_json.jsonl": (3, "invalid_json", None, "invalid JSON: Expecting ',' delimiter at column 49"),
    "data_type.jsonl": (3, "data_type", None, "each line must be a JSON object, this one is a JSON array"),
    "missing_messages_list.jsonl": (
        3,
        "missing_messages_list",
        "messages",
        'no "messages" list (nor legacy "prompt"/"completion")',
    ),
    "message_unrecognized_key.jsonl": (
        3,
        "message_unrecognized_key",
        "messages[0].lang",
        "messages[0] has an unrecognized key 'lang'",
    ),
    "unrecognized_role.jsonl": (3, "unrecognized_role", "messages[0].role", "messages[0] has role 'human'"),
    "missing_content.jsonl": (
        3,
        "missing_content",
        "messages[1].content",
        "messages[1] content must be a non-empty string, got an empty string",
    ),
    "example_missing_assistant_message.jsonl": (
        3,
        "example_missing_assistant_message",
        "messages",
        "no assistant message: there is nothing to learn from this example",
    ),
    "invalid_weight.jsonl": (
        3,
        "invalid_weight",
        "messages[1].weight",
        "messages[1] weight is 2; it must be 0 (do not train on this message) or 1",
    ),
    "mixed_formats.jsonl": (
        3,
        "mixed_formats",
        None,
        "this example is in the prompt_completion format but earlier lines are in the chat format",
    ),
    "non_utf8.jsonl": (4, "invalid_encoding", None, "not valid UTF-8: byte 0xe9 at column 47"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_bad_file_reports_its_error_with_line_field_and_fix(name: str) -> None:
    report = validate_file(ASSETS / name)
    line, code, field, message = ERRORS[name]
    assert not report.ok
    assert report.n_examples == 11
    first = report.errors[0]
    assert (first.line, first.code, first.field, first.message) == (line, code, field, message)
    assert first.fix  # every problem says how to fix it
    assert [p.code for p in report.errors] == [code]


def test_missing_role_is_reported_and_the_example_has_no_assistant() -> None:
    report = validate_file(ASSETS / "message_missing_key.jsonl")
    assert [(p.line, p.code, p.field) for p in report.errors] == [
        (3, "message_missing_key", "messages[1].role"),
        (3, "example_missing_assistant_message", "messages"),
    ]
    assert report.errors[0].message == 'messages[1] has no "role"'


def test_valid_file_passes_with_statistics() -> None:
    report = validate_file(ASSETS / "valid_chat.jsonl")
    assert report.ok and report.errors == [] and report.warnings == []
    assert (report.format, report.n_examples, report.n_lines) == ("chat", 11, 11)
    assert report.message_stats()["max"] == 3
    assert report.labels is not None
    assert report.labels.counts == {"negative": 4, "positive": 4, "neutral": 3}
    assert report.n_epochs == 9  # OpenAI's rule: 11 examples x 3 < 100 -> 100 // 11
    assert report.trained_tokens == 9 * sum(report.token_counts)


def test_too_few_examples_is_openais_error() -> None:
    report = validate_file(ASSETS / "too_few_examples.jsonl")
    assert [(p.line, p.code) for p in report.errors] == [(None, "invalid_n_examples")]
    assert report.errors[0].message == "Training file has 7 example(s), but must have at least 10 examples"
    assert validate_file(ASSETS / "too_few_examples.jsonl", min_examples=5).ok


def test_empty_file() -> None:
    report = validate_file(ASSETS / "empty.jsonl")
    assert [(p.line, p.code, p.message) for p in report.errors] == [(None, "empty_file", "the file is empty")]


def test_warnings_do_not_fail_the_file() -> None:
    blank = validate_file(ASSETS / "blank_line.jsonl")
    assert blank.ok and [(p.line, p.code) for p in blank.warnings] == [(3, "blank_line")]
    dup = validate_file(ASSETS / "duplicate_example.jsonl")
    assert dup.ok and [(p.line, p.code, p.message) for p in dup.warnings] == [
        (5, "duplicate_example", "same example as line 1")
    ]


def test_examples_over_the_context_are_warned_and_counted_truncated() -> None:
    report = validate_file(ASSETS / "long_example.jsonl", max_tokens=100)
    assert report.ok
    assert [(p.line, p.code) for p in report.warnings] == [(2, "too_many_tokens")]
    long_tokens = report.token_counts[1]
    assert report.warnings[0].message == (
        f"example has {long_tokens} tokens, over the 100-token limit; it will be truncated to 100 tokens"
    )
    others = sum(report.token_counts) - long_tokens
    assert report.trained_tokens == report.n_epochs * (others + 100)


def test_a_models_budget_sets_the_limit_its_jobs_cut_at_and_says_how(tmp_path: Path) -> None:
    from localft.training.auto import training_budget

    example = {"messages": [{"role": "user", "content": "word " * 1200}, {"role": "assistant", "content": "yes"}]}
    short = [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "no"}]}
        for i in range(11)
    ]
    path = tmp_path / "long.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [example, *short]) + "\n")
    # Within a context of 8,192 tokens, an LLM job still cuts at 512; an encoder job at 256.
    llm = validate_file(path, max_tokens=8192, budget=training_budget("causal_lm"))
    encoder = validate_file(path, max_tokens=8192, budget=training_budget("encoder"))
    assert (llm.max_tokens, encoder.max_tokens) == (512, 256)
    assert llm.warnings[0].message.endswith(
        "over the 512-token limit; training drops tokens from the middle of the conversation and keeps the answer"
    )
    assert encoder.warnings[0].message.endswith("the encoder reads the text's first tokens up to the limit")
    assert encoder.trained_tokens == encoder.n_epochs * (256 + sum(encoder.token_counts[1:]))
    # 12 examples at batch 1: OpenAI's rule gives 8 epochs, the encoder's 7 (80 steps)
    assert (llm.n_epochs, encoder.n_epochs) == (8, 7)
    # No model: the context alone limits, and OpenAI's rule gives the epochs.
    assert validate_file(path, max_tokens=8192).to_dict()["n_epochs_rule"] == "OpenAI's rule"
    assert "too_many_tokens" not in validate_file(path, max_tokens=8192).problem_counts


def test_legacy_prompt_completion_is_accepted_with_a_note() -> None:
    report = validate_file(ASSETS / "legacy_prompt_completion.jsonl")
    assert report.ok and report.format == "prompt_completion" and report.n_examples == 12
    assert [p.code for p in report.warnings] == ["legacy_format"]
    assert report.labels is not None and report.labels.counts == {"negative": 4, "neutral": 4, "positive": 4}


def test_custom_token_counter_is_used() -> None:
    report = validate_file(ASSETS / "valid_chat.jsonl", count_tokens=lambda text: len(text.split()))
    # system (6 words) + user + answer (1) + 3 per message + 3 for the reply priming
    assert report.token_counts[0] == 6 + 4 + 1 + 3 * 3 + 3
    assert report.tokenizer == "custom"


def test_problems_per_code_are_capped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text("not json\n" * (MAX_PROBLEMS_PER_CODE + 7))
    report = validate_file(path)
    assert len([p for p in report.errors if p.code == "invalid_json"]) == MAX_PROBLEMS_PER_CODE
    assert report.problem_counts["invalid_json"] == MAX_PROBLEMS_PER_CODE + 7


def test_report_serialises_and_raises_for_the_engine() -> None:
    report = validate_file(ASSETS / "too_few_examples.jsonl")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["n_examples"] == 7 and data["n_epochs"] == 14
    assert data["errors"][0]["code"] == "invalid_n_examples"
    with pytest.raises(DataValidationError) as caught:
        report.raise_for_errors()
    assert caught.value.code == "invalid_n_examples"
    bad = validate_file(ASSETS / "invalid_json.jsonl")
    with pytest.raises(DataValidationError) as caught:
        bad.raise_for_errors()
    assert caught.value.code == "invalid_training_file"
    assert str(caught.value).startswith("line 3: invalid JSON")
    validate_file(ASSETS / "valid_chat.jsonl").raise_for_errors()  # no error, no raise


def test_weight_zero_everywhere_is_warned(tmp_path: Path) -> None:
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0}]}
    other = {"messages": [{"role": "user", "content": "yo"}, {"role": "assistant", "content": "y", "weight": 1}]}
    path = tmp_path / "weights.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(other) + "\n")
    report = validate_file(path, min_examples=1)
    assert report.ok
    assert [(p.line, p.code) for p in report.warnings] == [(1, "no_trained_message")]
    assert report.labels is not None and report.labels.counts == {"y": 1}


def test_a_byte_order_mark_is_not_a_json_error(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (ASSETS / "valid_chat.jsonl").read_bytes())
    report = validate_file(path)
    assert report.ok and report.n_examples == 11
