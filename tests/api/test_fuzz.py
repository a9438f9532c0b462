"""Malformed requests across every route: never a 5xx, and OpenAI's error envelope on every 4xx.

The requests are generated from a fixed seed, so a failure replays: bad JSON, wrong types, huge, negative and
non-finite numbers, unicode, NUL bytes, long ids, traversal names, bad keys, wrong content types. They run on one
keep-alive connection, as an SDK sends them, so an error that closed the connection would fail the next request.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from localft.api.server import EmbeddedServer
from localft.settings import Settings

KEY = "sk-fuzz"
SEED = 23
WEIRD_STRINGS = [
    "",
    " ",
    "x" * 300,
    "x" * 10_000,
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "ft:",
    "ft:::::",
    "ft:x:y:z:w:ckpt-step-99999999999999999999",
    "ckpt-step--1",
    "file-",
    "ftjob-",
    "\u00e9\u00e8\u4e2d\u6587\U0001f600",
    "\u202e\u200b",
    "nul\x00byte",
    "lone \ud800 surrogate",
    "line\nbreak",
    "%00",
    "/absolute/path",
    "C:\\windows\\system32",
    "gpt-4o-mini",
    "smollm2-135m-instruct",
]
WEIRD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63,
    2**64,
    -(2**70),
    10**30,
    1e308,
    -1e308,
    1.5,
    -0.0,
    "1",
    "auto",
    "NaN",
    [],
    [1, 2],
    {},
    {"a": 1},
    [{"role": "user"}],
    *WEIRD_STRINGS[:12],
]
BAD_JSON = [
    b"{",
    b"}",
    b"[]",
    b"null",
    b"42",
    b'"a string"',
    b"{'single': 'quotes'}",
    b'{"a": 1,}',
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b"\xff\xfe\x00garbage",
    b"\xef\xbb\xbf{}",
    b"[" * 50_000,
    b'{"a": ' * 5_000,
    b'{"model": "x"' + b" " * 100_000,
]
PATH_IDS = [
    *(quote(text, safe="/:%.", errors="surrogatepass") for text in WEIRD_STRINGS),
    "x" * 5_000,
    "%2e%2e",
    "..",
    ".",
    "a/b",
    "%ff%fe",
]


@dataclasses.dataclass
class Case:
    method: str
    path: str
    kwargs: dict[str, Any]

    def describe(self) -> str:
        shown = {k: (repr(v)[:400]) for k, v in self.kwargs.items() if k != "headers"}
        return f"{self.method} {self.path[:120]} {shown}"


def _json_body(body: Any) -> dict[str, Any]:
    return {"content": json.dumps(body, allow_nan=True).encode(), "headers": {"content-type": "application/json"}}


def _mutations(rng: random.Random, valid: dict[str, Any], n: int) -> Iterator[dict[str, Any]]:
    """Bodies that are `valid` with one field replaced, removed or joined by a stranger, or nested wrongly."""
    fields = list(valid)
    for _ in range(n):
        body = json.loads(json.dumps(valid))
        kind = rng.randrange(4)
        field = rng.choice(fields)
        if kind == 0:
            body[field] = rng.choice(WEIRD_VALUES)
        elif kind == 1:
            del body[field]
        elif kind == 2:
            body[rng.choice(WEIRD_STRINGS) or "extra"] = rng.choice(WEIRD_VALUES)
        else:
            body[field] = {"nested": body[field]} if rng.random() < 0.5 else [body[field]]
        yield body


def _cases(state: dict[str, str], rng: random.Random) -> list[Case]:
    file_id, job_id, model = state["file"], state["job"], state["model"]
    cases: list[Case] = []
    add = cases.append

    # Files: uploads with bad parts, names, purposes and contents; lookups with bad ids and queries.
    for purpose in ["fine-tune", "", "fine-tune-results", "x" * 1000, "\u4e2d", "evals"]:
        for content in [b"", b"not json\n", b"\xff\xfe", b"[1,2]\n", b'{"messages": 5}\n', b"\x00" * 10]:
            add(Case("POST", "/v1/files", {"files": {"file": ("data.jsonl", content)}, "data": {"purpose": purpose}}))
    for name in ["../../x.jsonl", "\x00.jsonl", "x" * 4000, "\u202e.jsonl", ""]:
        add(Case("POST", "/v1/files", {"files": {"file": (name, b"{}\n")}, "data": {"purpose": "fine-tune"}}))
    add(Case("POST", "/v1/files", {"data": {"purpose": "fine-tune"}}))
    add(Case("POST", "/v1/files", {"files": {"other": ("a", b"{}")}, "data": {"purpose": "fine-tune"}}))
    add(Case("POST", "/v1/files", {"files": {"file": ("a.jsonl", b"{}\n")}}))
    add(
        Case(
            "POST",
            "/v1/files",
            {"content": b"--x\r\nbroken multipart", "headers": {"content-type": "multipart/form-data; boundary=x"}},
        )
    )
    add(Case("POST", "/v1/files", _json_body({"file": "abc", "purpose": "fine-tune"})))
    for ident in PATH_IDS:
        for suffix in ("", "/content", "/validation"):
            add(Case("GET", f"/v1/files/{ident}{suffix}", {}))
        add(Case("DELETE", f"/v1/files/{ident}", {}))
    for params in [
        {"limit": "-1"}, {"limit": "0"}, {"limit": str(10**30)}, {"limit": "abc"}, {"limit": "1.5"},
        {"order": "sideways"}, {"after": "file-nothere"}, {"after": "x" * 3000}, {"purpose": "\x00"},
        {"format": "xml"}, {"model": "x" * 300},
    ]:  # fmt: skip
        add(Case("GET", "/v1/files", {"params": params}))
        add(Case("GET", f"/v1/files/{file_id}/content", {"params": params}))
        add(Case("GET", f"/v1/files/{file_id}/validation", {"params": params}))
    for model_name in [*WEIRD_STRINGS, "minilm-l6", "mpnet-base", "/etc", str(Path(model).parent)]:
        add(Case("GET", f"/v1/files/{file_id}/validation", {"params": {"model": model_name}}))

    # Jobs: creation bodies, then every job route with bad ids and queries.
    job = {"model": model, "training_file": file_id, "hyperparameters": {"n_epochs": 1}, "suffix": "s"}
    for body in _mutations(rng, job, 70):
        add(Case("POST", "/v1/fine_tuning/jobs", _json_body(body)))
    for hp in ["n_epochs", "batch_size", "learning_rate_multiplier", "max_length", "unknown"]:
        for value in rng.sample(WEIRD_VALUES, 6):
            add(Case("POST", "/v1/fine_tuning/jobs", _json_body({**job, "hyperparameters": {hp: value}})))
            method = {"type": "supervised", "supervised": {"hyperparameters": {hp: value}}}
            add(Case("POST", "/v1/fine_tuning/jobs", _json_body({**job, "hyperparameters": None, "method": method})))
    for method in [{"type": "dpo"}, {"type": "reinforcement"}, {"type": 5}, {"supervised": "x"}, []]:
        add(Case("POST", "/v1/fine_tuning/jobs", _json_body({**job, "method": method})))
    for metadata in [{"k" * 100: "v"}, {str(i): "v" for i in range(20)}, {"k": "v" * 1000}, {"k": 5}, [1]]:
        add(Case("POST", "/v1/fine_tuning/jobs", _json_body({**job, "metadata": metadata})))
    for raw in BAD_JSON:
        for path in ("/v1/fine_tuning/jobs", "/v1/chat/completions"):
            add(Case("POST", path, {"content": raw, "headers": {"content-type": "application/json"}}))
    add(
        Case(
            "POST",
            "/v1/fine_tuning/jobs",
            {"content": json.dumps(job).encode(), "headers": {"content-type": "text/plain"}},
        )
    )
    for ident in [*PATH_IDS, job_id]:
        for tail, verb in (("", "GET"), ("/events", "GET"), ("/checkpoints", "GET"), ("/cancel", "POST"),
                           ("/pause", "POST"), ("/resume", "POST")):  # fmt: skip
            add(Case(verb, f"/v1/fine_tuning/jobs/{ident}{tail}", {}))
    for params in [
        {"limit": "0"}, {"limit": "-5"}, {"limit": "1001"}, {"limit": "x"}, {"after": "ftjob-none"},
        {"metadata[k]": "\x00"}, {"metadata[": "x"}, {"metadata[]": ""}, {"after": "\u4e2d" * 500},
    ]:  # fmt: skip
        add(Case("GET", "/v1/fine_tuning/jobs", {"params": params}))
        add(Case("GET", f"/v1/fine_tuning/jobs/{job_id}/events", {"params": params}))
        add(Case("GET", f"/v1/fine_tuning/jobs/{job_id}/checkpoints", {"params": params}))

    # Models: ids of every shape, read and deleted.
    for ident in [*PATH_IDS, model, "ft:smollm2-135m-instruct:localft::abcdefgh:ckpt-step-3"]:
        add(Case("GET", f"/v1/models/{ident}", {}))
        add(Case("DELETE", f"/v1/models/{ident}", {}))

    # Chat: one bad field at a time on a request the tiny model answers, and messages of every wrong shape.
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}
    for body in _mutations(rng, chat, 60):
        add(Case("POST", "/v1/chat/completions", _json_body(body)))
    for name in ["n", "temperature", "top_p", "seed", "stop", "logprobs", "top_logprobs", "logit_bias",
                 "response_format", "max_completion_tokens", "stream", "max_tokens"]:  # fmt: skip
        for value in rng.sample(WEIRD_VALUES, 5):
            add(Case("POST", "/v1/chat/completions", _json_body({**chat, name: value})))
    for messages in [
        [], [{}], [{"role": "user"}], [{"role": "user", "content": None}], [{"role": "user", "content": [5]}],
        [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": {"text": "x"}}],
        [{"role": "assistant", "content": "x" * 20_000}], [{"role": "user", "content": "\x00\ud800"}],
        [{"role": "tool", "content": "x", "tool_call_id": 5}], "hi", [["user", "hi"]],
    ]:  # fmt: skip
        add(Case("POST", "/v1/chat/completions", _json_body({**chat, "messages": messages})))
    for fmt in [{"type": "json_schema"}, {"type": "json_schema", "json_schema": {"schema": {"enum": []}}},
                {"type": "json_schema", "json_schema": {"schema": {"properties": {"a": {"enum": [None, 1, {}]}}}}},
                {"type": "json_object"}, {"type": "xml"}, {"json_schema": 5}]:  # fmt: skip
        add(Case("POST", "/v1/chat/completions", _json_body({**chat, "response_format": fmt})))

    # Keys, methods, unknown routes and the open routes.
    for route in ("/v1/models", "/v1/files", "/v1/workers", f"/v1/fine_tuning/jobs/{job_id}"):
        for header in ["", "Bearer", "Bearer ", "Basic abc", "Bearer wrong", f"Bearer {KEY} extra", "bearer \u00e9",
                       f"Bearer {KEY}\x00"]:  # fmt: skip
            add(Case("GET", route, {"headers": {"authorization": header}, "auth": False}))
    for method in ("PUT", "PATCH", "OPTIONS", "POST", "DELETE"):
        for route in ("/v1/models", "/v1/workers", "/health", f"/v1/files/{file_id}/content", "/v1/nothing"):
            add(Case(method, route, {}))
    for route in ("/health", "/version", "/openapi.json", "/", "/static/../../etc/passwd", "/static/%2e%2e/x",
                  "/static/" + "x" * 5000, "/v1", "/v1/", "/v2/models", "/v1/workers"):  # fmt: skip
        add(Case("GET", route, {}))
    return cases


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz_server(settings: Settings, request: pytest.FixtureRequest) -> Iterator[EmbeddedServer]:
    """The server on each store: PostgreSQL refuses text that SQLite stores (a NUL character, for one)."""
    database = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    configured = dataclasses.replace(
        settings, api_keys=(KEY,), embedded_worker=False, max_upload_bytes=1_000_000, database_url=database
    )
    with EmbeddedServer(configured) as server:
        yield server


def _envelope_problem(response: httpx.Response) -> str | None:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"not OpenAI's envelope: {response.text[:200]!r}"
    if not isinstance(error, dict) or set(error) != {"message", "type", "param", "code"}:
        return f"envelope keys {error!r:.200}"
    if not isinstance(error["message"], str) or not error["message"] or error["type"] != "invalid_request_error":
        return f"envelope values {error!r:.200}"
    return None


def test_malformed_requests_never_get_a_5xx(
    fuzz_server: EmbeddedServer, tiny_causal_lm: Path, train_file: Path, helpers: Any
) -> None:
    keyed = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=fuzz_server.root_url, timeout=120) as http:
        files = {"file": train_file.open("rb")}
        upload = http.post("/v1/files", files=files, data={"purpose": "fine-tune"}, headers=keyed).json()
        body = {"model": str(tiny_causal_lm), "training_file": upload["id"]}
        job = http.post("/v1/fine_tuning/jobs", json=body, headers=keyed)
        state = {"file": upload["id"], "job": job.json()["id"], "model": str(tiny_causal_lm)}
        cases = _cases(state, random.Random(SEED))
        assert len(cases) >= 500
        problems: list[str] = []
        statuses: dict[int, int] = {}
        for case in cases:
            kwargs = dict(case.kwargs)
            headers = {} if kwargs.pop("auth", True) is False else dict(keyed)
            headers.update(kwargs.pop("headers", {}))
            try:
                request = http.build_request(case.method, case.path, headers=headers, **kwargs)
            except (httpx.InvalidURL, ValueError):
                continue  # the client itself will not send it (a NUL in a header, say)
            try:
                response = http.send(request)
            except httpx.LocalProtocolError:
                continue  # the client refused to send it (a header h11 will not write)
            except httpx.HTTPError as exc:
                problems.append(f"{case.describe()}: {type(exc).__name__}: {exc}")
                continue
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                problems.append(f"{case.describe()}: {response.status_code} {response.text[:300]}")
            elif response.status_code >= 400 and (problem := _envelope_problem(response)):
                problems.append(f"{case.describe()}: {response.status_code} {problem}")
    assert not problems, f"{len(problems)} of {len(cases)} requests went wrong:\n" + "\n".join(problems[:20])
    assert sum(n for status, n in statuses.items() if 400 <= status < 500) > len(cases) // 2, statuses
