"""`GET /v1/models/{id}/export` and `localft models export | import` on tiny fine-tunes: the exported folders load
with transformers and answer as the server does, and an imported export is served with the same answers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.settings import Settings

SYSTEM = "Classify the sentiment of this tweet."
TEXTS = ["the flight was great thanks 3", "my bag was lost again 4", "great thanks", "lost again", "the flight"]


def _train(client: openai.OpenAI, model: str, tmp_path: Path, helpers: Any) -> str:
    path = helpers.write_chat_jsonl(tmp_path / "train.jsonl", 12)
    training = client.files.create(file=path.open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=model, training_file=training.id, hyperparameters={"n_epochs": 2, "batch_size": 4}
    )
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model
    return done.fine_tuned_model


def _answers(client: openai.OpenAI, model: str, system: bool = True) -> list[str]:
    out = []
    for text in TEXTS:
        messages = [{"role": "system", "content": SYSTEM}] if system else []
        reply = client.chat.completions.create(
            model=model,
            messages=[*messages, {"role": "user", "content": text}],
            temperature=0,  # type: ignore[list-item]
        )
        out.append(reply.choices[0].message.content or "")
    return out


def _export(server: EmbeddedServer, model: str, out: Path, *extra: str) -> None:
    result = CliRunner().invoke(
        main, ["models", "export", model, "-o", str(out), "--base-url", server.base_url, *extra]
    )
    assert result.exit_code == 0, result.output
    assert (out / "localft.json").is_file()


def _import(folder: Path) -> str:
    result = CliRunner().invoke(main, ["models", "import", str(folder), "--suffix", "back", "--json"])
    assert result.exit_code == 0, result.output
    model_id: str = json.loads(result.output)["id"]
    assert model_id.endswith(":back:" + model_id.rsplit(":", 1)[-1])
    return model_id


def test_an_encoder_fine_tune_exports_loads_in_a_pipeline_and_imports_back(
    client: openai.OpenAI,
    live_server: EmbeddedServer,
    settings: Settings,
    tiny_encoder: Path,
    tmp_path: Path,
    helpers: Any,
) -> None:
    from transformers import pipeline

    model = _train(client, str(tiny_encoder), tmp_path, helpers)
    served = _answers(client, model)
    out = tmp_path / "export"
    _export(live_server, model, out)
    config = json.loads((out / "config.json").read_text())
    assert set(config["label2id"]) == {"positive", "negative"} and "auto_map" in config
    classify = pipeline("text-classification", model=str(out), trust_remote_code=True)
    assert [classify(text)[0]["label"] for text in TEXTS] == served  # the user's text alone

    imported = _import(out)
    assert imported in {m.id for m in client.models.list()}
    assert _answers(client, imported) == served
    assert _answers(client, imported, system=False) == _answers(client, model, system=False)
    client.models.delete(imported)
    assert imported not in {m.id for m in client.models.list()}
    assert not list(settings.models_dir.glob("import-*"))  # its weights went with it


def test_an_encoder_fine_tune_exports_as_onnx(
    client: openai.OpenAI, live_server: EmbeddedServer, tiny_encoder: Path, tmp_path: Path, helpers: Any
) -> None:
    import numpy as np
    import onnxruntime
    from transformers import AutoTokenizer

    model = _train(client, str(tiny_encoder), tmp_path, helpers)
    out = tmp_path / "onnx"
    _export(live_server, model, out, "--format", "onnx")
    id2label = json.loads((out / "config.json").read_text())["id2label"]
    tokenizer = AutoTokenizer.from_pretrained(out)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    logits = session.run(None, dict(tokenizer(TEXTS, padding=True, truncation=True, return_tensors="np")))[0]
    assert [id2label[str(i)] for i in np.argmax(logits, axis=-1)] == _answers(client, model)


def test_a_lora_fine_tune_exports_merged_with_its_adapter_and_imports_back(
    client: openai.OpenAI, live_server: EmbeddedServer, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    model = _train(client, str(tiny_causal_lm), tmp_path, helpers)
    out = tmp_path / "export"
    _export(live_server, model, out)
    assert (out / "model.safetensors").is_file() and (out / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and GenerationConfig.from_pretrained(out).do_sample is False
    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    adapted = PeftModel.from_pretrained(base, str(out / "adapter"))
    prompt = tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEXTS[0]}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        want = adapted(**prompt).logits
        got = merged(**prompt).logits
    assert torch.allclose(got, want, atol=1e-4)

    imported = _import(out)
    assert _answers(client, imported) == _answers(client, model)


def test_export_errors_use_openais_envelope(
    client: openai.OpenAI, live_server: EmbeddedServer, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    missing = httpx.get(f"{live_server.base_url}/models/ft:nothing:localft::abcd1234/export")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    base = httpx.get(f"{live_server.base_url}/models/smollm2-135m-instruct/export")
    assert base.status_code == 400 and base.json()["error"]["code"] == "model_not_exportable"
    model = _train(client, str(tiny_causal_lm), tmp_path, helpers)
    onnx = httpx.get(f"{live_server.base_url}/models/{model}/export", params={"format": "onnx"})
    assert onnx.status_code == 400 and onnx.json()["error"]["param"] == "format"
    bad = httpx.get(f"{live_server.base_url}/models/{model}/export", params={"format": "gguf"})
    assert bad.status_code == 400 and "error" in bad.json()
    whole = httpx.get(f"{live_server.base_url}/models/{model}/export", timeout=120)
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/zip"
    archive = tmp_path / "m.zip"
    archive.write_bytes(whole.content)
    assert "adapter/adapter_config.json" in zipfile.ZipFile(archive).namelist()
    failed = CliRunner().invoke(main, ["models", "export", "ft:nothing:localft::x", "-o", str(tmp_path / "x"),
                                       "--base-url", live_server.base_url])  # fmt: skip
    assert failed.exit_code == 1 and "does not exist" in failed.output and not (tmp_path / "x").exists()


@pytest.mark.parametrize("multi", [False, True])
def test_a_sequence_classification_folder_made_elsewhere_imports(
    client: openai.OpenAI, tiny_encoder: Path, tmp_path: Path, multi: bool
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = tmp_path / "foreign"
    labels = {0: "negative", 1: "positive"}
    problem = "multi_label_classification" if multi else "single_label_classification"
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_encoder, id2label=labels, label2id={v: k for k, v in labels.items()}, problem_type=problem
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_encoder).save_pretrained(folder)
    imported = _import(folder)
    classify = pipeline("text-classification", model=str(folder))
    got = _answers(client, imported, system=False)
    if not multi:
        assert got == [classify(text)[0]["label"] for text in TEXTS]
    assert all(set(answer.split(",")) <= set(labels.values()) for answer in got)
