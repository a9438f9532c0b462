"""localft.remote against a real HTTP server on loopback that fails on a script: 429, 500, timeouts, bad answers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from localft.remote import Backoff, MalformedResponse, RemoteCaller, Response, ResponseCache, answer_text, request_key

FAST = Backoff(base=0.01, cap=0.05)


class FlakyServer:
    """A chat-completions endpoint: `script[text]` lists what each successive call for that text gets."""

    def __init__(self) -> None:
        self.script: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            text = body["messages"][-1]["content"]
            n = self.calls[text]
            self.calls[text] += 1
            plan = self.script.get(text, [])
            action = plan[n] if n < len(plan) else "ok"
            if action == "429":
                return JSONResponse(
                    {"error": {"message": "slow down", "type": "rate_limit", "param": None, "code": None}},
                    status_code=429,
                    headers={"retry-after": "0.01"},
                )
            if action in ("500", "400"):
                err = {"message": action, "type": "server_error", "param": None, "code": None}
                return JSONResponse({"error": err}, status_code=int(action))
            if action == "hang":
                import asyncio

                await asyncio.sleep(2.0)
            content = "garbage" if action == "bad" else text.upper()
            self.answered[text] += 1
            return JSONResponse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
                }
            )

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer()
    server.thread.start()
    deadline = time.monotonic() + 10
    while not server.server.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.02)
    yield server
    server.server.should_exit = True
    server.thread.join(timeout=10)


def _req(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0}


def _caller(server: FlakyServer, **kwargs: Any) -> RemoteCaller:
    options: dict[str, Any] = {"backoff": FAST, "progress": False, "timeout": 0.5, "seed": 0}
    options.update(kwargs)
    return RemoteCaller(base_url=server.base_url, **options)


def test_retries_429_500_and_timeouts_then_answers_in_order(flaky: FlakyServer) -> None:
    flaky.script = {"a": ["429", "429"], "b": ["500"], "c": ["hang"], "d": []}
    caller = _caller(flaky, concurrency=3)
    results = caller.chat([_req(t) for t in "abcd"])
    assert [answer_text(r.response or {}) for r in results] == ["A", "B", "C", "D"]
    assert [r.attempts for r in results] == [3, 2, 2, 1]
    s = caller.stats
    assert (s.requests, s.sent, s.retries, s.failures) == (4, 8, 4, 0)
    assert s.errors == {"RateLimitError": 2, "InternalServerError": 1, "APITimeoutError": 1}
    assert s.prompt_tokens == 20 and s.completion_tokens == 4 and s.total_tokens == 24
    assert all(r.latency_s is not None and r.latency_s > 0 for r in results)


def test_gives_up_after_max_retries_and_never_retries_a_400(flaky: FlakyServer) -> None:
    flaky.script = {"x": ["500"] * 10, "y": ["400", "ok"]}
    caller = _caller(flaky, max_retries=2)
    x, y = caller.chat([_req("x"), _req("y")])
    assert not x.ok and x.attempts == 3 and x.error is not None and "InternalServerError" in x.error
    assert not y.ok and y.attempts == 1 and y.error is not None and "BadRequestError" in y.error
    assert caller.stats.failures == 2
    assert flaky.calls == Counter({"x": 3, "y": 1})
    assert "2 failed" in caller.stats.summary()


def test_interrupted_run_resumes_from_cache_without_duplicates(flaky: FlakyServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    texts = [f"t{i}" for i in range(12)]
    # The first run loses t3 and t7 (always 500): they are reported failed and not cached.
    flaky.script = {"t3": ["500"] * 3, "t7": ["500"] * 3}
    first = _caller(flaky, cache_path=cache, max_retries=2, concurrency=4).chat([_req(t) for t in texts])
    assert sum(not r.ok for r in first) == 2
    assert len(cache.read_text().splitlines()) == 10
    # The second run (a new process in real life) sends only the two missing requests.
    second_caller = _caller(flaky, cache_path=cache, concurrency=4)
    second = second_caller.chat([_req(t) for t in texts])
    assert [answer_text(r.response or {}) for r in second] == [t.upper() for t in texts]
    assert [r.cached for r in second] == [t not in ("t3", "t7") for t in texts]
    assert second_caller.stats.sent == 2 and second_caller.stats.cached == 10
    assert all(r.latency_s is not None for r in second)  # cached answers keep their measured latency
    assert flaky.answered == Counter({t: 1 for t in texts})  # every text answered exactly once overall
    keys = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert sorted(keys) == sorted(request_key(_req(t)) for t in texts)


def test_torn_last_line_is_skipped_and_appends_stay_parseable(tmp_path: Path) -> None:
    path = tmp_path / "cache.jsonl"
    ok_line = json.dumps({"key": "k1", "request": {}, "response": {"choices": []}, "latency_s": 0.1})
    path.write_text(ok_line + "\n" + '{"key": "k2", "requ')
    cache = ResponseCache(path)
    assert len(cache) == 1 and cache.skipped_lines == 1 and cache.get("k2") is None
    cache.put("k3", {"q": 1}, {"choices": []}, 0.2)
    reloaded = ResponseCache(path)
    assert reloaded.get("k3") == ({"choices": []}, 0.2) and reloaded.get("k1") is not None
    assert reloaded.skipped_lines == 1


def test_malformed_answers_are_retried_then_reported(flaky: FlakyServer, tmp_path: Path) -> None:
    flaky.script = {"p": ["bad", "ok"], "q": ["bad"] * 5}

    def check(response: Response) -> None:
        if answer_text(response) == "garbage":
            raise MalformedResponse("not a label")

    cache = tmp_path / "c.jsonl"
    p, q = _caller(flaky, max_retries=2, cache_path=cache).chat([_req("p"), _req("q")], check=check)
    assert p.ok and answer_text(p.response or {}) == "P" and p.attempts == 2
    assert not q.ok and q.error is not None and "not a label" in q.error and q.attempts == 3
    assert len(ResponseCache(cache)) == 1  # the rejected answer was never cached


def test_identical_requests_are_sent_once(flaky: FlakyServer) -> None:
    caller = _caller(flaky)
    results = caller.chat([_req("same"), _req("other"), _req("same")])
    assert [answer_text(r.response or {}) for r in results] == ["SAME", "OTHER", "SAME"]
    assert flaky.calls == Counter({"same": 1, "other": 1})
    assert caller.stats.requests == 2


def test_custom_sender_and_key_ignores_dict_order() -> None:
    seen: list[str] = []

    def send(request: Any) -> Response:
        seen.append(request["messages"][0]["content"])
        return {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}

    caller = RemoteCaller(send=send, progress=False)
    assert caller.chat([_req("z")])[0].ok and seen == ["z"]
    assert request_key({"a": 1, "b": [1, 2]}) == request_key({"b": [1, 2], "a": 1})
    with pytest.raises(ValueError, match="concurrency"):
        RemoteCaller(send=send, concurrency=0)
