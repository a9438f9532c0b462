"""`label` and `synth` against a real HTTP server that fails on a script: 429s, 500s, timeouts, malformed answers.

The server is a small FastAPI app on a loopback port. Each text (or synth batch) has a list of actions its
successive requests get; when the list is used up the request is answered correctly. The tests check that every
failure kind is retried, that answers that never parse are reported rather than kept, and that a second run with
the cache re-sends only what was missing: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from localft.cli import main
from localft.labeling.labeler import label_texts
from localft.labeling.synth import synthesize
from localft.remote import Backoff, RemoteCaller

LABELS = ["get_payslip", "book_holiday", "report_sick"]
TEXTS = {
    "where can I find my payslip": "get_payslip",
    "I want two days off in May": "book_holiday",
    "I have the flu and cannot come in": "report_sick",
    "send me last month's salary slip": "get_payslip",
    "can I take next Friday off": "book_holiday",
    "my child is sick, I stay home": "report_sick",
    "payslip for March please": "get_payslip",
    "plan my summer vacation days": "book_holiday",
}
TIMEOUT_S = 0.5


class FlakyTeacher:
    """A scripted OpenAI-compatible chat endpoint; `calls` records the key of every request it received."""

    def __init__(self) -> None:
        self.plan: dict[str, list[str]] = {}
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._chat)

    def _next(self, key: str) -> str:
        with self._lock:
            self.calls.append(key)
            actions = self.plan.get(key) or []
            return actions.pop(0) if actions else "ok"

    async def _chat(self, request: Request) -> Any:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        synth = re.search(r'category "([^"]+)"', prompt)
        key = f"{synth.group(1)}#{body.get('seed')}" if synth else prompt
        action = self._next(key)
        if action in ("429", "500"):
            envelope = {"error": {"message": f"scripted {action}", "type": "server_error", "param": None, "code": None}}
            return JSONResponse(envelope, status_code=int(action), headers={"retry-after": "0"})
        if action == "timeout":
            await asyncio.sleep(TIMEOUT_S * 4)
        if action == "malformed":
            content = "Hard to say, it could be several things."
        elif synth:
            label, batch = synth.group(1), int(body.get("seed") or 0)
            # Every batch starts with the first line of batch 0, so each batch brings one exact duplicate.
            lines = [_sentence(label, batch, i) for i in range(3)]
            content = "\n".join([f"1. {_sentence(label, 0, 0)}", *lines])
        else:
            gold = TEXTS[prompt]
            content = json.dumps({"action": gold}) if len(prompt) % 2 else gold
        return {
            "id": "chatcmpl-flaky",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
        }


VOCAB = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
]


def _sentence(label: str, batch: int, i: int) -> str:
    """A generated line; different (batch, i) give texts far apart, so only deliberate repeats are duplicates."""
    return f"{label} " + " ".join(random.Random(batch * 100 + i).sample(VOCAB, 6))


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyTeacher, str]]:
    teacher = FlakyTeacher()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(teacher.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "flaky teacher did not start"
    yield teacher, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def _caller(url: str, cache: Path) -> RemoteCaller:
    return RemoteCaller(
        base_url=url,
        cache_path=cache,
        concurrency=3,
        max_retries=3,
        timeout=TIMEOUT_S,
        backoff=Backoff(base=0.01, cap=0.05),
        progress=False,
    )


def test_label_retries_every_failure_kind_and_resumes_without_loss(
    flaky: tuple[FlakyTeacher, str], tmp_path: Path
) -> None:
    teacher, url = flaky
    texts = list(TEXTS)
    teacher.plan = {
        texts[0]: ["429", "429"],
        texts[1]: ["500"],
        texts[2]: ["timeout"],
        texts[3]: ["malformed"],
        texts[4]: ["malformed"] * 100,  # never parses: must be reported, never kept
        texts[5]: ["500"] * 100,  # the endpoint never answers this one
    }
    caller = _caller(url, tmp_path / "cache.jsonl")
    run = label_texts(texts, LABELS, model="teacher", caller=caller, rounds=2)

    assert {item.text: item.label for item in run.labelled} == {t: TEXTS[t] for t in texts if t not in texts[4:6]}
    assert {item.text for item in run.rejected} == {texts[4], texts[5]}
    assert run.items[4].error is not None and "not one of the labels" in run.items[4].error
    errors = caller.stats.errors
    assert errors["RateLimitError"] == 2
    assert errors["APITimeoutError"] == 1
    assert errors["InternalServerError"] == 1 + 2 * 4  # texts[1] once, texts[5] on all 4 attempts of 2 rounds
    assert errors["MalformedResponse"] == 1 + 2 * 4
    assert caller.stats.failures == 4  # texts[4] and texts[5], once per round
    assert caller.stats.prompt_tokens == 10 * 6  # usage of the six accepted answers

    # The endpoint recovers; a second run with the same cache sends only the two missing texts.
    teacher.plan = {}
    teacher.calls.clear()
    again = label_texts(texts, LABELS, model="teacher", caller=_caller(url, tmp_path / "cache.jsonl"), rounds=2)
    assert Counter(teacher.calls) == Counter({texts[4]: 1, texts[5]: 1})
    assert [item.label for item in again.items] == [TEXTS[t] for t in texts]


def test_label_cli_resume_after_failures(flaky: tuple[FlakyTeacher, str], tmp_path: Path) -> None:
    teacher, url = flaky
    texts = list(TEXTS)
    source = tmp_path / "texts.csv"
    source.write_text("text\n" + "\n".join(f'"{t}"' for t in texts) + "\n", encoding="utf-8")
    out = tmp_path / "labelled.jsonl"
    teacher.plan = {texts[i]: ["500"] * 10 for i in (1, 6)}
    args = ["label", str(source), "-o", str(out), "--labels", ",".join(LABELS), "--model", "teacher"]
    args += ["--base-url", url, "--max-retries", "0", "--rounds", "1", "--quiet"]

    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "Labelled 6 of 8 texts" in first.output
    rejected = [json.loads(line) for line in out.with_suffix(".rejected.jsonl").read_text().splitlines()]
    assert sorted(r["text"] for r in rejected) == sorted([texts[1], texts[6]])

    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2
    assert "--resume" in refused.output

    teacher.plan = {}
    teacher.calls.clear()
    resumed = CliRunner().invoke(main, [*args, "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.output)
    assert summary["labelled"] == 8 and summary["rejected"] == 0
    assert summary["requests"]["cached"] == 6
    assert Counter(teacher.calls) == Counter({texts[1]: 1, texts[6]: 1})
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["messages"][-2]["content"] for r in records] == texts  # input order, each text exactly once
    assert [r["messages"][-1]["content"] for r in records] == [TEXTS[t] for t in texts]
    assert all(label in records[0]["messages"][0]["content"] for label in LABELS)


def test_synth_survives_failures_dedupes_and_resumes_from_cache(
    flaky: tuple[FlakyTeacher, str], tmp_path: Path
) -> None:
    teacher, url = flaky
    teacher.plan = {"get_payslip#0": ["429", "500"], "book_holiday#1": ["timeout"], "book_holiday#0": ["500"] * 100}
    labels: dict[str, str | None] = {"get_payslip": "asking for a salary statement", "book_holiday": None}
    run = synthesize(labels, 7, model="teacher", caller=_caller(url, tmp_path / "synth.jsonl"), per_request=3)

    by_label = Counter(e.label for e in run.examples)
    assert by_label == Counter({"get_payslip": 7, "book_holiday": 7})
    texts = [e.text for e in run.examples]
    assert len(set(texts)) == len(texts)
    payslip = next(c for c in run.classes if c.label == "get_payslip")
    assert (payslip.exact_duplicates, payslip.near_duplicates) == (3, 0)  # the repeated line of each batch
    assert payslip.shortfall == 0 and payslip.diversity["n_texts"] == 7

    teacher.plan = {}
    teacher.calls.clear()
    again = synthesize(labels, 7, model="teacher", caller=_caller(url, tmp_path / "synth.jsonl"), per_request=3)
    assert teacher.calls == ["book_holiday#0"]  # the only batch that never got an answer
    assert sorted(e.text for e in again.examples if e.label == "get_payslip") == sorted(
        e.text for e in run.examples if e.label == "get_payslip"
    )
