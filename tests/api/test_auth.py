"""API keys: 401 in OpenAI's envelope when keys are configured; open on loopback otherwise; exposure warning."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import openai
import pytest

from localft.api.server import EmbeddedServer, exposure_warning
from localft.settings import Settings


@pytest.fixture
def keyed_server(settings: Settings) -> Iterator[EmbeddedServer]:
    keyed = dataclasses.replace(settings, api_keys=("sk-local-one", "sk-local-two"), embedded_worker=False)
    with EmbeddedServer(keyed) as server:
        yield server


def test_missing_or_wrong_key_is_401(keyed_server: EmbeddedServer) -> None:
    response = httpx.get(f"{keyed_server.base_url}/models")
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "missing_api_key", None)
    wrong = openai.OpenAI(base_url=keyed_server.base_url, api_key="sk-wrong-key-123456", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        wrong.models.list()
    assert denied.value.code == "invalid_api_key"
    assert "sk-wrong-key-123456" not in denied.value.message  # never echo a secret back in full


def test_any_configured_key_works_and_health_stays_open(keyed_server: EmbeddedServer) -> None:
    for key in ("sk-local-one", "sk-local-two"):
        client = openai.OpenAI(base_url=keyed_server.base_url, api_key=key, max_retries=0)
        assert client.models.list().data
    assert httpx.get(f"{keyed_server.root_url}/health").json()["status"] == "ok"
    assert httpx.get(f"{keyed_server.root_url}/version").json()["version"] == "0.1.0"


def test_no_keys_means_open(live_server: EmbeddedServer) -> None:
    assert httpx.get(f"{live_server.base_url}/models").status_code == 200


def test_exposure_warning_only_for_open_non_loopback_binds() -> None:
    assert exposure_warning(Settings(host="127.0.0.1")) is None
    assert exposure_warning(Settings(host="0.0.0.0", api_keys=("k",))) is None
    warning = exposure_warning(Settings(host="0.0.0.0"))
    assert warning is not None and "LOCALFT_API_KEYS" in warning


def test_openapi_document_matches_the_routes(live_server: EmbeddedServer) -> None:
    spec = httpx.get(f"{live_server.root_url}/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/files", "post"),
        ("/v1/files", "get"),
        ("/v1/files/{file_id}", "delete"),
        ("/v1/files/{file_id}/content", "get"),
        ("/v1/fine_tuning/jobs", "post"),
        ("/v1/fine_tuning/jobs/{job_id}/cancel", "post"),
        ("/v1/fine_tuning/jobs/{job_id}/pause", "post"),
        ("/v1/fine_tuning/jobs/{job_id}/resume", "post"),
        ("/v1/fine_tuning/jobs/{job_id}/events", "get"),
        ("/v1/fine_tuning/jobs/{job_id}/checkpoints", "get"),
        ("/v1/models", "get"),
        ("/v1/models/{model_id}", "delete"),
        ("/v1/chat/completions", "post"),
        ("/health", "get"),
        ("/version", "get"),
    ]:
        assert method in paths[path], (path, method)
    job = spec["components"]["schemas"]["FineTuningJob"]["properties"]
    assert job["object"]["const"] == "fine_tuning.job"
    # Every documented GET without path parameters answers (what is documented is what is served).
    for path, item in paths.items():
        if "get" in item and "{" not in path and path != "/":
            assert httpx.get(f"{live_server.root_url}{path}").status_code == 200, path
