"""Calling an OpenAI-compatible endpoint many times: concurrency, retries, a resume cache, a progress bar, counts.

Evaluation (`localft eval`/`compare`) and teacher labelling (`localft label`/`synth`/`distill`) both send
hundreds of chat completions to a server that may be slow, rate-limited or flaky. `RemoteCaller` sends a batch
of request bodies with a bounded number of threads, retries 429s, 5xx answers, timeouts and connection errors
with exponential backoff and full jitter (honouring `Retry-After`), and appends every successful answer to a
JSONL cache keyed by the request body. Running the same batch again reads the cache first, so an interrupted run
resumes where it stopped: nothing is sent twice and nothing already answered is lost.

    caller = RemoteCaller(base_url="http://127.0.0.1:8000/v1", cache_path=Path("eval-cache.jsonl"))
    results = caller.chat([{"model": "ft:...", "messages": [...], "temperature": 0}, ...])
    print(caller.stats.summary())

The transport is pluggable (`send`), so the in-process path of `localft eval` gets the same cache, concurrency
and progress bar without a server.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from tqdm import tqdm

Request = Mapping[str, Any]
Response = dict[str, Any]
Send = Callable[[Request], Response]
Check = Callable[[Response], None]

RETRYABLE_STATUS = frozenset({408, 409, 429})
"""Statuses worth another try besides every 5xx: the same set the official SDK retries."""


class MalformedResponse(ValueError):
    """Raised by a `check` callback when an answer is unusable (e.g. not one of the labels): it is retried."""


class RetryableError(Exception):
    """Raised by a custom `send` for a transient failure that deserves another attempt."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base * 2**k)) seconds."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based); a server's Retry-After is a floor."""
        wait = rng.uniform(0.0, min(self.cap, self.base * 2**attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait


@dataclass(frozen=True)
class CallResult:
    """The outcome of one request of a batch, in the batch's order."""

    key: str
    response: Response | None
    """The JSON answer (OpenAI's shape) or None when every attempt failed."""
    error: str | None = None
    attempts: int = 0
    """HTTP attempts made in this run (0 when answered from the cache)."""
    cached: bool = False
    latency_s: float | None = None
    """Seconds of the successful attempt (kept in the cache, so resumed runs still report real latencies)."""

    @property
    def ok(self) -> bool:
        return self.response is not None


@dataclass
class CallStats:
    """Counts for the final summary line. Updated under the caller's lock."""

    requests: int = 0
    """Distinct requests in the batches (duplicates are sent once)."""
    sent: int = 0
    """HTTP attempts actually made, retries included."""
    cached: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    """Failure kind -> count, over all attempts (RateLimitError: 3, ...)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> str:
        """One line for the terminal: requests, answered from cache, retries, failures, tokens, time."""
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items()))
        return (
            f"{self.requests} requests ({self.cached} from cache, {self.sent} sent, {self.retries} retried), "
            f"{self.failures} failed, {self.total_tokens} tokens "
            f"({self.prompt_tokens} prompt + {self.completion_tokens} completion) in {self.wall_s:.1f}s"
            + (f"; errors: {errors}" if errors else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "sent": self.sent,
            "cached": self.cached,
            "retries": self.retries,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "wall_s": self.wall_s,
            "errors": dict(self.errors),
        }


def request_key(request: Request) -> str:
    """A stable key for a request body: sha256 of its canonical JSON (key order does not matter)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """An append-only JSONL file of `{"key", "request", "response", "latency_s"}` lines.

    Each answer is written and flushed as soon as it arrives, so a killed run keeps all answers it received. A
    torn last line (the process died mid-write) is skipped on load and its request is simply sent again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Response, float | None]] = {}
        self.skipped_lines = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    self._entries[record["key"]] = (record["response"], record.get("latency_s"))
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> tuple[Response, float | None] | None:
        return self._entries.get(key)

    def put(self, key: str, request: Request, response: Response, latency_s: float | None) -> None:
        line = json.dumps(
            {"key": key, "request": request, "response": response, "latency_s": latency_s},
            ensure_ascii=False,
            default=str,
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A torn line left by a killed run has no newline: start ours on a fresh line so both stay parseable.
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(("\n" if needs_newline else "") + line + "\n")
                fh.flush()
            self._entries[key] = (response, latency_s)

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as fh:
            fh.seek(-1, 2)
            return fh.read(1) == b"\n"


def openai_chat_sender(
    base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0
) -> tuple[Send, Callable[[Exception], tuple[bool, float | None]]]:
    """A `send` that posts chat completions with the official SDK (its own retries off), and its error classifier."""
    client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout, max_retries=0)

    def send(request: Request) -> Response:
        completion = client.chat.completions.create(**dict(request))
        dumped: Response = completion.model_dump(mode="json", exclude_unset=False)
        return dumped

    return send, classify_openai_error


def classify_openai_error(exc: Exception) -> tuple[bool, float | None]:
    """(retryable, Retry-After seconds) for an exception from the SDK or a custom sender."""
    if isinstance(exc, RetryableError):
        return True, exc.retry_after
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after: float | None = None
        header = exc.response.headers.get("retry-after")
        if header is not None:
            try:
                retry_after = float(header)
            except ValueError:
                retry_after = None
        return status in RETRYABLE_STATUS or status >= 500, retry_after
    return False, None


class RemoteCaller:
    """Sends batches of chat-completion request bodies; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        send: Send | None = None,
        concurrency: int = 4,
        max_retries: int = 5,
        timeout: float = 60.0,
        backoff: Backoff | None = None,
        cache_path: Path | None = None,
        progress: bool = True,
        description: str = "requests",
        seed: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {max_retries}")
        if send is None:
            self._send, self._classify = openai_chat_sender(base_url, api_key, timeout)
        else:
            self._send, self._classify = send, classify_openai_error
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.cache = ResponseCache(cache_path) if cache_path is not None else None
        self.progress = progress
        self.description = description
        self.stats = CallStats()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def chat(self, requests: Sequence[Request], check: Check | None = None) -> list[CallResult]:
        """Answer every request (cache first, then the endpoint); results come back in the input order.

        `check(response)` may raise `MalformedResponse` to have an unusable answer retried like a transient error;
        only answers that pass are cached. Identical requests are sent once and share one result.
        """
        started = time.perf_counter()
        keys = [request_key(r) for r in requests]
        unique: dict[str, Request] = {}
        for key, request in zip(keys, requests, strict=True):
            unique.setdefault(key, request)
        done: dict[str, CallResult] = {}
        pending: list[str] = []
        for key in unique:
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                done[key] = CallResult(key, hit[0], cached=True, latency_s=hit[1])
            else:
                pending.append(key)
        with self._lock:
            self.stats.requests += len(unique)
            self.stats.cached += len(unique) - len(pending)
        bar = tqdm(
            total=len(unique),
            initial=len(unique) - len(pending),
            desc=self.description,
            unit="req",
            disable=not self.progress,
            leave=False,
        )
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="localft-remote")
        try:
            futures = {pool.submit(self._call, key, unique[key], check): key for key in pending}
            for future in as_completed(futures):
                result = future.result()
                done[result.key] = result
                bar.update(1)
                if not result.ok:
                    bar.set_postfix(failed=self.stats.failures)
        finally:
            # On Ctrl-C, drop what has not started; answers already received are in the cache.
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            with self._lock:
                self.stats.wall_s += time.perf_counter() - started
        return [done[key] for key in keys]

    def _call(self, key: str, request: Request, check: Check | None) -> CallResult:
        last_error = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt > 0:
                with self._lock:
                    self.stats.retries += 1
            with self._lock:
                self.stats.sent += 1
            began = time.perf_counter()
            try:
                response = self._send(request)
                if check is not None:
                    check(response)
            except MalformedResponse as exc:
                retryable, retry_after = True, None
                last_error = f"MalformedResponse: {exc}"
                self._count_error("MalformedResponse")
            except Exception as exc:  # classified below: an unknown error fails this request only, not the batch
                retryable, retry_after = self._classify(exc)
                last_error = f"{type(exc).__name__}: {exc}"
                self._count_error(type(exc).__name__)
            else:
                latency = time.perf_counter() - began
                self._count_usage(response)
                if self.cache is not None:
                    self.cache.put(key, request, response, latency)
                return CallResult(key, response, attempts=attempt + 1, latency_s=latency)
            if not retryable or attempt == self.max_retries:
                with self._lock:
                    self.stats.failures += 1
                return CallResult(key, None, error=last_error, attempts=attempt + 1)
            with self._lock:
                wait = self.backoff.delay(attempt, self._rng, retry_after)
            time.sleep(wait)
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _count_error(self, kind: str) -> None:
        with self._lock:
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    def _count_usage(self, response: Response) -> None:
        usage = response.get("usage") or {}
        with self._lock:
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens += int(usage.get("completion_tokens") or 0)


def answer_text(response: Response, index: int = 0) -> str:
    """The assistant text of choice `index` ("" when the server sent none)."""
    choices = response.get("choices") or []
    if len(choices) <= index:
        return ""
    message = choices[index].get("message") or {}
    return str(message.get("content") or "")
