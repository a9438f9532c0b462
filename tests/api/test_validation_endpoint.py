"""`GET /v1/files/{id}/validation` (a localft extension) through the official openai SDK's low-level client: the
report of `localft.data.validate`, the same one `localft validate --json` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from localft.data.validate import validate_file


def validation(client: openai.OpenAI, file_id: str, **query: str) -> dict[str, Any]:
    report: dict[str, Any] = client.get(f"/files/{file_id}/validation", cast_to=object, options={"params": query})
    return report


def test_good_file_report_matches_the_cli_validator(client: openai.OpenAI, train_file: Path) -> None:
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    report = validation(client, uploaded.id)
    local = validate_file(train_file).to_dict()
    assert report == {**local, "path": "train.jsonl", "file_id": uploaded.id}
    assert report["ok"] is True and report["errors"] == [] and report["n_examples"] > 0
    assert report["tokenizer"].startswith("approximate")


def test_bad_file_names_lines_codes_and_fields(client: openai.OpenAI, tmp_path: Path) -> None:
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "positive"}]}
    lines = [json.dumps(good)] * 2
    lines.append(json.dumps({"messages": [{"role": "robot", "content": "x"}, good["messages"][1]]}))
    lines.append(json.dumps({"messages": [{"role": "user", "content": "no answer"}]}))
    path = tmp_path / "broken.jsonl"
    path.write_text("\n".join(lines) + "\n")
    uploaded = client.files.create(file=path.open("rb"), purpose="fine-tune")

    report = validation(client, uploaded.id)
    assert report["ok"] is False
    assert [(p["line"], p["code"], p["field"]) for p in report["errors"]] == [
        (3, "unrecognized_role", "messages[0].role"),
        (4, "example_missing_assistant_message", "messages"),
        (None, "invalid_n_examples", None),
    ]
    assert all(p["fix"] for p in report["errors"])
    assert [(p["line"], p["code"]) for p in report["warnings"]] == [
        (2, "duplicate_example"),
        (3, "missing_user_message"),
    ]


def test_counts_tokens_with_a_base_models_tokenizer(
    client: openai.OpenAI, train_file: Path, tiny_causal_lm: Path
) -> None:
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    report = validation(client, uploaded.id, model=str(tiny_causal_lm))
    assert report["tokenizer"] == str(tiny_causal_lm) and report["max_tokens"] == 512
    estimated = validation(client, uploaded.id)
    assert report["tokens_per_example"] != estimated["tokens_per_example"]

    with pytest.raises(openai.BadRequestError) as unknown:
        validation(client, uploaded.id, model="no-such-model-anywhere")
    assert unknown.value.status_code == 400 and unknown.value.param == "model"


def test_auto_epochs_are_the_ones_the_models_job_runs(
    client: openai.OpenAI, train_file: Path, tiny_causal_lm: Path, tiny_encoder: Path, helpers: Any
) -> None:
    """An encoder's `auto` follows its own rule (80 optimizer steps, 1-10 epochs), not OpenAI's; the report names the
    rule and the number, and a job on the same file and model runs exactly that many."""
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    estimated = validation(client, uploaded.id)
    llm = validation(client, uploaded.id, model=str(tiny_causal_lm))
    encoder = validation(client, uploaded.id, model=str(tiny_encoder))
    assert (estimated["n_epochs"], estimated["n_epochs_rule"]) == (8, "OpenAI's rule")  # 12 examples: 100 // 12
    assert (llm["n_epochs"], llm["n_epochs_rule"]) == (8, "OpenAI's rule")
    assert encoder["n_epochs"] == 7 and encoder["n_epochs_rule"].startswith("encoders'")  # batch 1: 12 steps each
    assert encoder["trained_tokens"] == 7 * sum(
        min(t, encoder["max_tokens"]) for t in _token_counts(train_file, tiny_encoder)
    )

    job = client.fine_tuning.jobs.create(model=str(tiny_encoder), training_file=uploaded.id)
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.hyperparameters.n_epochs == encoder["n_epochs"]


def _token_counts(path: Path, model: Path) -> list[int]:
    from localft.data.tokens import model_tokens

    return validate_file(path, count_tokens=model_tokens(str(model)).count).token_counts


def test_unknown_file_and_wrong_purpose(client: openai.OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        validation(client, "file-missing")
    assert missing.value.body == {  # type: ignore[comparison-overlap]
        "message": "No such File object: file-missing", "type": "invalid_request_error", "param": "file_id",
        "code": "file_not_found",
    }  # fmt: skip

    notes = tmp_path / "notes.txt"
    notes.write_text("not training data\n")
    other = client.files.create(file=notes.open("rb"), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as wrong:
        validation(client, other.id)
    assert wrong.value.code == "invalid_file_purpose" and wrong.value.param == "file_id"
