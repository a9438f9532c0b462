"""@slow: the tutorial flow on real built-in models and a real dataset (airline tweets), through the openai SDK.

Upload 40 training and 15 validation tweets, fine-tune for one epoch, and ask the fine-tuned model. The job
timeout is generous because shared CI machines can be many times slower than a quiet one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pandas as pd
import pytest

LABELS = ("negative", "neutral", "positive")
SYSTEM = "Classify the sentiment of this airline tweet as negative, neutral or positive."


def _airline_splits(datasets: Path, out: Path) -> tuple[Path, Path, list[tuple[str, str]]]:
    frame = pd.read_csv(datasets / "twitter_airline_sentiment" / "Tweets.csv")
    train, valid = [], []
    for i, label in enumerate(LABELS):
        rows = frame[frame["airline_sentiment"] == label]
        n_train = 14 if i == 0 else 13
        train += [(t, label) for t in rows["text"].iloc[:n_train]]
        valid += [(t, label) for t in rows["text"].iloc[n_train : n_train + 5]]

    def write(path: Path, rows: list[tuple[str, str]]) -> Path:
        records = [
            {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
                          {"role": "assistant", "content": label}]}
            for text, label in rows
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    return write(out / "train.jsonl", train), write(out / "valid.jsonl", valid), valid


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gpt-4o-mini", "minilm-l6"])
def test_tutorial_flow_on_a_real_model(
    client: openai.OpenAI, datasets: Path, tmp_path: Path, model: str, helpers: Any
) -> None:
    train_path, valid_path, valid = _airline_splits(datasets, tmp_path)
    training = client.files.create(file=train_path.open("rb"), purpose="fine-tune")
    validation = client.files.create(file=valid_path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        training_file=training.id,
        validation_file=validation.id,
        model=model,
        suffix="airline",
        hyperparameters={"n_epochs": 1, "batch_size": 8},
    )
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed", "cancelled"}, timeout=1800)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:")
    epoch_end = [
        e.data
        for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
        if e.type == "metrics" and e.data and e.data.get("full_valid_loss") is not None
    ]
    assert epoch_end and 0.0 <= epoch_end[0]["full_valid_accuracy"] <= 1.0
    for text, _gold in valid[::5]:
        answer = client.chat.completions.create(
            model=done.fine_tuned_model,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            temperature=0,
            max_tokens=5,
        )
        assert answer.choices[0].message.content in LABELS
