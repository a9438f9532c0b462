"""`model: "auto"` and the OpenAI chat aliases through the API, with the real SDK: the job's events show the
candidates' table and the choice, its hyperparameters name the classifier, and the model answers with label
probabilities, also when asked in another wrapper than the training prompts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import openai
import pytest

import localft.training.selection as selection


@pytest.fixture(autouse=True)
def tiny_encoders(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`auto` chooses among TF-IDF and the tiny encoder, as it does among the built-in ones."""
    monkeypatch.setattr(selection, "installed_encoders", lambda: [str(tiny_encoder)])
    monkeypatch.setattr(selection, "is_installed_name", lambda name: False)  # no LLM candidate: kept fast


def test_an_auto_job_shows_its_choice_and_answers(client: openai.OpenAI, tmp_path: Path, helpers: Any) -> None:
    training = client.files.create(
        file=helpers.write_chat_jsonl(tmp_path / "t.jsonl", 24).open("rb"), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=training.id, suffix="auto", hyperparameters={"n_epochs": 2}
    )
    assert job.model == "auto"
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=600)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:auto:localft:auto:")
    chosen = done.hyperparameters.to_dict()["classifier"]
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    table = next(m for m in messages if m.startswith("auto: classifiers scored"))
    assert "  tfidf  " in table
    if chosen.endswith(" tuned"):  # the frozen encoder the table chose, then fine-tuned from its head
        encoder = chosen.removesuffix(" tuned")
        assert f"{encoder} frozen" in table.split("auto: chose ")[1]
        assert any(m.startswith(f"auto: fine-tuning {encoder} from its chosen head") for m in messages)
    else:
        assert f"auto: chose {chosen}" in table

    system = "Classify the sentiment of this tweet."
    trained = client.chat.completions.create(
        model=done.fine_tuned_model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "my bag was lost again 3"}],
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    answer = trained.choices[0]
    assert answer.message.content in {"positive", "negative"}
    assert answer.logprobs is not None and answer.logprobs.content is not None
    top = answer.logprobs.content[0].top_logprobs
    assert math.isclose(sum(math.exp(t.logprob) for t in top), 1.0, abs_tol=1e-4)
    wrapped = client.chat.completions.create(
        model=done.fine_tuned_model,
        messages=[{"role": "user", "content": "Is this tweet positive or negative? tweet: my bag was lost again 3"}],
        temperature=0,
        logprobs=True,
    )
    assert wrapped.choices[0].message.content == answer.message.content
    assert wrapped.choices[0].logprobs is not None and wrapped.choices[0].logprobs.content is not None
    assert wrapped.choices[0].logprobs.content[0].logprob == pytest.approx(answer.logprobs.content[0].logprob)


def test_auto_is_a_model_to_fine_tune_and_to_ask(idle_client: openai.OpenAI, tmp_path: Path, helpers: Any) -> None:
    path = helpers.write_chat_jsonl(tmp_path / "t.jsonl", 12)
    training = idle_client.files.create(file=path.open("rb"), purpose="fine-tune")
    assert idle_client.fine_tuning.jobs.create(model="auto", training_file=training.id).model == "auto"
    assert idle_client.models.retrieve("auto").id == "auto"
