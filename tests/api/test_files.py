"""`/v1/files` through the official openai SDK: upload, list with pagination, retrieve, content, delete, limits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import openai
import pytest

from localft.api.server import EmbeddedServer
from localft.settings import Settings


def test_upload_retrieve_content_delete(client: openai.OpenAI, train_file: Path, settings: Settings) -> None:
    uploaded = client.files.create(file=train_file.open("rb"), purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        train_file.stat().st_size,
        "train.jsonl",
        "fine-tune",
    )
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).read() == train_file.read_bytes()
    sneaky = client.files.create(file=("../../escape.jsonl", train_file.read_bytes()), purpose="fine-tune")
    assert sneaky.filename == "escape.jsonl"
    client.files.delete(sneaky.id)
    # Stored under a generated name, never the caller's.
    assert [p.name for p in settings.files_dir.iterdir()] == [uploaded.id]
    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    assert list(settings.files_dir.iterdir()) == []
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(uploaded.id)
    assert missing.value.body == {  # type: ignore[comparison-overlap]
        "message": f"No such File object: {uploaded.id}", "type": "invalid_request_error", "param": "file_id",
        "code": "file_not_found",
    }  # fmt: skip


def test_content_decides_not_the_filename(client: openai.OpenAI, train_file: Path, tmp_path: Path) -> None:
    # The legacy SDK uploads every file under the name "file"; JSONL content is what counts.
    uploaded = client.files.create(file=("file", train_file.read_bytes()), purpose="fine-tune")
    assert uploaded.filename == "file"
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("data.jsonl", b'{"messages": []}\nnot json at all\n'), purpose="fine-tune")
    assert bad.value.code is None and bad.value.param == "file"
    assert "Must be .jsonl: line 2 is not valid JSON" in bad.value.message
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("x.jsonl", train_file.read_bytes()), purpose="poetry")  # type: ignore[arg-type]
    assert purpose.value.param == "purpose"
    assert [f.id for f in client.files.list().data] == [uploaded.id]  # the rejected uploads left nothing


def test_list_filters_orders_and_paginates(client: openai.OpenAI, train_file: Path) -> None:
    ids = [client.files.create(file=train_file.open("rb"), purpose="fine-tune").id for _ in range(5)]
    report = client.files.create(file=("report-1.json", b'{"accuracy": 1}'), purpose="evals")
    newest_first = [*reversed(ids)]
    first = client.files.list(purpose="fine-tune", limit=2)
    assert [f.id for f in first.data] == newest_first[:2] and first.has_more
    # The SDK's auto-pagination follows `after` through every page.
    assert [f.id for f in client.files.list(purpose="fine-tune", limit=2)] == newest_first
    assert [f.id for f in client.files.list(purpose="fine-tune", order="asc", limit=3)] == ids
    assert [f.id for f in client.files.list(purpose="evals").data] == [report.id]
    assert len(client.files.list().data) == 6


def test_upload_over_the_limit_is_413_and_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    small = dataclasses.replace(settings, max_upload_bytes=1000)
    with EmbeddedServer(small) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        line = b'{"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]}\n'
        client.files.create(file=("ok.jsonl", line * 5), purpose="fine-tune")  # 480 bytes: fine
        # ~4 MB: far more than the socket buffers, so a server that answered without reading the body would reset
        # the connection and the client would see a connection error instead of the 413.
        with pytest.raises(openai.APIStatusError) as declared:
            client.files.create(file=("big.jsonl", line * 40000), purpose="fine-tune")
        assert declared.value.status_code == 413 and declared.value.code == "file_too_large"
        # A body streamed without Content-Length is still counted while it is written.
        chunked = _multipart_chunks(line * 30)
        response = httpx.post(
            f"{server.base_url}/files",
            content=chunked,
            headers={"content-type": "multipart/form-data; boundary=BOUNDARY"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "file_too_large"
        assert len(client.files.list().data) == 1
    assert [p.name for p in small.files_dir.iterdir() if p.name.startswith(".")] == []


def _multipart_chunks(payload: bytes) -> object:
    def gen():  # type: ignore[no-untyped-def]
        yield b'--BOUNDARY\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        yield b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="f.jsonl"\r\n'
        yield b"Content-Type: application/octet-stream\r\n\r\n"
        yield payload
        yield b"\r\n--BOUNDARY--\r\n"

    return gen()


def test_unknown_routes_and_methods_use_the_error_envelope(live_server: EmbeddedServer) -> None:
    response = httpx.get(f"{live_server.base_url}/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"message": "Invalid URL (GET /v1/nothing-here)", "type": "invalid_request_error", "param": None,
                  "code": None}
    }  # fmt: skip
    assert httpx.put(f"{live_server.base_url}/files").json()["error"]["type"] == "invalid_request_error"
