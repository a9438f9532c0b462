"""Exports of real fine-tunes of the built-in models give the top label `/v1/chat/completions` gives, on 50 airline
tweets, for every kind: a LoRA fine-tune of SmolLM2 (merged; its label scores and greedy generation), a tuned MiniLM
(Hugging Face pipeline and ONNX), frozen MiniLM + head, TF-IDF + head, and an ensemble of TF-IDF, frozen MiniLM and
frozen MPNet. Each agreement is printed (run with `-s`; the README quotes these lines)."""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.base_models import local_model_dir
from localft.base_models.prompt_shape import PromptShape
from localft.classifier import Member
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import PROBE_C, fit_head
from localft.classifier.model import load_encoder_features, save_member
from localft.cli import main
from localft.jobs.schema import ModelRecord
from localft.jobs.store import Store
from localft.settings import Settings
from localft.training import TrainSpec, run_training
from localft.training.checkpoint import CheckpointMeta, write_meta
from localft.training.hparams import Hyperparameters

pytestmark = pytest.mark.slow

CACHE = Path(__file__).resolve().parents[2] / ".localft-test-cache"
SYSTEM = "Classify the sentiment of this airline tweet: negative, neutral, positive."
LABELS = ["negative", "neutral", "positive"]
N_TEST = 50


class Sink:
    def log(self, message: str, level: str = "info") -> None: ...
    def log_metrics(self, metrics: object) -> None: ...
    def on_checkpoint(self, checkpoint: object) -> None: ...
    def should_stop(self) -> bool:
        return False


def airline(datasets: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """20 training tweets per class (the first), then the next tweets in turn for a 50-tweet test set."""
    by_label: dict[str, list[str]] = defaultdict(list)
    with (datasets / "twitter_airline_sentiment" / "Tweets.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            by_label[row["airline_sentiment"]].append(row["text"])
    train = [(t, label) for label in LABELS for t in by_label[label][:20]]
    test = [(by_label[LABELS[i % 3]][20 + i // 3], LABELS[i % 3]) for i in range(N_TEST)]
    return train, test


def write(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for text, label in rows:
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
            fh.write(json.dumps({"messages": [*messages, {"role": "assistant", "content": label}]}) + "\n")
    return path


@pytest.fixture
def server(settings: Settings) -> Iterator[EmbeddedServer]:
    """The server on the test's data folder, with the converted base models the slow tier shares (no worker:
    these tests train in process)."""
    with EmbeddedServer(dataclasses.replace(settings, cache_root=CACHE, embedded_worker=False)) as running:
        yield running


def register(settings: Settings, checkpoint: Path, name: str, base_model: str) -> str:
    store = Store.open(settings.db_url)
    model_id = f"ft:{name}:localft:export:test0000"
    path = str(checkpoint.resolve().relative_to(settings.home.resolve()))
    store.add_model(ModelRecord(model_id, int(time.time()), "localft", f"import-{name}", base_model, path))
    store.close()
    return model_id


def fixed_classifier(folder: Path, train: list[tuple[str, str]], kinds: list[str]) -> Path:
    """A classifier of frozen members (`tfidf`, or an encoder's name), as `auto` writes one."""
    texts = [t for t, _ in train]
    targets = np.asarray([LABELS.index(g) for _, g in train])
    folder.mkdir(parents=True)
    members = []
    for i, kind in enumerate(kinds):
        if kind == "tfidf":
            features: object = TfidfFeatures.fit(texts)
            member = Member("tfidf", f"member-{i}")
        else:
            features = load_encoder_features(local_model_dir(kind, CACHE), "cpu", 256)
            member = Member("encoder", f"member-{i}", base_model=kind, max_length=256)
        head = fit_head(features.embed(texts), targets, 3, False, PROBE_C)  # type: ignore[attr-defined]
        save_member(folder, member, head, features)  # type: ignore[arg-type]
        members.append(member.to_dict())
    shape = PromptShape.learn([[{"role": "system", "content": SYSTEM}, {"role": "user", "content": t}] for t in texts])
    meta = CheckpointMeta(
        base_model="auto", family="classifier", task="classification", step=1, epoch=1, labels=LABELS,
        members=members, prompt_shape=shape.to_dict(),
    )  # fmt: skip
    write_meta(folder, meta)
    return folder


def served(client: openai.OpenAI, model: str, test: list[tuple[str, str]]) -> list[str]:
    answers = []
    for text, _ in test:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        reply = client.chat.completions.create(model=model, messages=messages, temperature=0)  # type: ignore[arg-type]
        answers.append(reply.choices[0].message.content or "")
    return answers


def export(server: EmbeddedServer, model: str, out: Path, fmt: str = "hf") -> Path:
    args = ["models", "export", model, "-o", str(out), "--format", fmt, "--base-url", server.base_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def agreement(kind: str, served_labels: list[str], exported: list[str]) -> float:
    share = float(np.mean([a == b for a, b in zip(served_labels, exported, strict=True)]))
    print(f"\nexport agreement {kind}: {share:.0%} of {len(served_labels)} texts")
    return share


def pipeline_labels(folder: Path, test: list[tuple[str, str]]) -> list[str]:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True)
    return [classify(text)[0]["label"] for text, _ in test]  # the user's text alone


def onnx_labels(folder: Path, test: list[tuple[str, str]]) -> list[str]:
    import onnxruntime
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    id2label = json.loads((folder / "config.json").read_text())["id2label"]
    out = []
    for text, _ in test:
        logits = session.run(None, dict(tokenizer([text], truncation=True, return_tensors="np")))[0]
        out.append(id2label[str(int(np.argmax(logits[0])))])
    return out


CLASSIFIERS: dict[str, list[str]] = {
    "minilm-l6 frozen + head": ["minilm-l6"],
    "tfidf + head": ["tfidf"],
    "ensemble tfidf + minilm-l6 frozen + mpnet-base frozen": ["tfidf", "minilm-l6", "mpnet-base"],
}


def test_exported_classifiers_agree_with_the_server(
    server: EmbeddedServer, settings: Settings, datasets: Path, tmp_path: Path
) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
    train, test = airline(datasets)
    tuned = run_training(
        TrainSpec(
            base_model="minilm-l6", training_file=write(tmp_path / "train.jsonl", train),
            output_dir=settings.models_dir / "tuned", hyperparameters=Hyperparameters(n_epochs=3, batch_size=16),
            cache_dir=CACHE, seed=3,
        ),
        Sink(),  # type: ignore[arg-type]
    )  # fmt: skip
    runs: dict[str, tuple[str, Callable[[Path, list[tuple[str, str]]], list[str]], str]] = {}
    model = register(settings, tuned.final_checkpoint, "minilm-tuned", "minilm-l6")
    runs["minilm-l6 tuned (LP-FT), pipeline"] = (model, pipeline_labels, "hf")
    runs["minilm-l6 tuned (LP-FT), onnx"] = (model, onnx_labels, "onnx")
    for i, (kind, members) in enumerate(CLASSIFIERS.items()):
        checkpoint = fixed_classifier(settings.models_dir / f"fixed-{i}", train, members)
        runs[kind] = (register(settings, checkpoint, f"fixed{i}", "auto"), pipeline_labels, "hf")
    shares, imported = {}, {}
    for i, (kind, (model_id, labels_of, fmt)) in enumerate(runs.items()):
        folder = export(server, model_id, tmp_path / f"export-{i}", fmt)
        answers = served(client, model_id, test)
        shares[kind] = agreement(kind, answers, labels_of(folder, test))
        if fmt == "hf":  # served again from the exported folder alone
            result = CliRunner().invoke(main, ["models", "import", str(folder), "--json"])
            assert result.exit_code == 0, result.output
            imported[kind] = agreement(
                f"{kind}, imported", answers, served(client, json.loads(result.output)["id"], test)
            )
    assert shares == {kind: 1.0 for kind in runs}
    assert imported == {kind: 1.0 for kind, (_, _, fmt) in runs.items() if fmt == "hf"}


def test_an_exported_lora_fine_tune_agrees_with_the_server(
    settings: Settings, datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merged model in fp32 (what `from_pretrained` loads) against the server as it runs by default (bf16
    weights on a CPU with native bf16) and with fp32 weights: the latter is the same function, so its answers must
    all agree; bf16 rounding may flip a near-tie, which the printed figure shows."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import localft.inference.precision as precision

    train, test = airline(datasets)
    result = run_training(
        TrainSpec(
            base_model="smollm2-135m-instruct", training_file=write(tmp_path / "train.jsonl", train),
            output_dir=settings.models_dir / "lora", hyperparameters=Hyperparameters(n_epochs=2), cache_dir=CACHE,
        ),
        Sink(),  # type: ignore[arg-type]
    )  # fmt: skip
    model_id = register(settings, result.final_checkpoint, "smollm2-lora", "smollm2-135m-instruct")
    answers: dict[str, list[str]] = {}
    with EmbeddedServer(dataclasses.replace(settings, cache_root=CACHE, embedded_worker=False)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        answers[str(precision.compute_dtype("cpu")).removeprefix("torch.")] = served(client, model_id, test)
        folder = export(server, model_id, tmp_path / "export")
    monkeypatch.setattr(precision, "compute_dtype", lambda device: torch.float32)
    with EmbeddedServer(dataclasses.replace(settings, cache_root=CACHE, embedded_worker=False)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)
        answers["float32"] = served(client, model_id, test)

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generated, scored = [], []
    for text, _ in test:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        prompt = str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**inputs)
        new = out[0, inputs["input_ids"].shape[1] :]
        generated.append(str(tokenizer.decode(new, skip_special_tokens=True)).strip())
        scored.append(top_label(model, tokenizer, prompt))
    shares = {}
    for weights, labels in answers.items():
        kind = f"smollm2-135m-instruct LoRA, merged (fp32) vs the server with {weights} weights"
        agreement(f"{kind}, greedy generate", labels, generated)
        shares[weights] = agreement(f"{kind}, label scores", labels, scored)
    assert shares["float32"] == 1.0


def top_label(model: object, tokenizer: object, prompt: str) -> str:
    """The label whose tokens, then the end of the turn, are likeliest after the prompt: how localft answers."""
    import torch

    tok: Any = tokenizer
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    scores = []
    for label in LABELS:
        answer = tok(label + "<|im_end|>", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids + answer])).logits[0, len(ids) - 1 : -1]  # type: ignore[operator]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        scores.append(float(logprobs[torch.arange(len(answer)), torch.tensor(answer)].sum()))
    return LABELS[int(np.argmax(scores))]
