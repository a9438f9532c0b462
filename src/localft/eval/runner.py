"""Running a model over a test set: through any OpenAI-compatible endpoint, or in-process on the engine.

Both paths send the same chat-completion bodies (`temperature=0`, `logprobs=True`) through `localft.remote`, so
they share the concurrency limit, retries, the resume cache and the progress bar. The in-process path only
swaps the transport for a call to `InferenceEngine.chat`, shaping its answer like the server's JSON.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localft.eval.testset import TestSet
from localft.remote import CallStats, RemoteCaller, Request, Response, Send, answer_text

if TYPE_CHECKING:
    from localft.inference.engine import InferenceEngine
    from localft.inference.types import ChatResult

NO_ANSWER = "(no answer)"
"""The prediction recorded for a request that failed after every retry: scored as wrong, shown as such."""


@dataclass(frozen=True)
class RunOptions:
    """How to query the model. The defaults are the tutorials' classification settings."""

    concurrency: int = 4
    max_retries: int = 5
    timeout: float = 120.0
    """Seconds per request before it counts as a (retried) timeout."""
    max_tokens: int | None = None
    """Answer length limit; None: enough for the longest gold answer of the test set."""
    top_logprobs: int = 5
    system_prompt: str | None = None
    """Prepended to examples that have no system message (zero-shot prompting of a base model)."""
    cache_path: Path | None = None
    """JSONL resume cache for this model's answers (see localft.remote)."""
    progress: bool = True


@dataclass(frozen=True)
class Prediction:
    """A model's answer to one example."""

    answer: str
    """The raw answer text (NO_ANSWER when the request failed)."""
    label_probs: dict[str, float] | None = None
    latency_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunResult:
    """Everything measured while a model answered a test set."""

    model: str
    predictions: list[Prediction]
    wall_s: float
    cpu_s: float | None
    """CPU seconds of this process during the run: meaningful when the model runs in this process."""
    peak_rss_mb: float | None
    stats: CallStats = field(default_factory=CallStats)


def build_request(model: str, messages: list[dict[str, Any]], max_tokens: int, options: RunOptions) -> Request:
    """The chat-completion body for one example."""
    if options.system_prompt and not any(m.get("role") == "system" for m in messages):
        messages = [{"role": "system", "content": options.system_prompt}, *messages]
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
        "logprobs": True,
    }
    if options.top_logprobs:
        body["top_logprobs"] = options.top_logprobs
    return body


def default_max_tokens(testset: TestSet) -> int:
    """Room for the longest gold answer (about 3 characters per token, plus slack), never below 8."""
    return max(8, math.ceil(testset.longest_answer_chars() / 3) + 4)


def label_probs(choice: Mapping[str, Any], labels: list[str], prefix: str = "") -> dict[str, float] | None:
    """Label probabilities of one choice: localft's `label_probs` when present, else from the first label token.

    With only OpenAI's `top_logprobs`, the first token after the assistant prefix is read: each listed token that
    starts exactly one label adds its probability to it (tokens shared by several labels, like `ne` for
    negative/neutral, are ambiguous and left out), then the result is normalised. None when nothing matches.
    """
    given = choice.get("label_probs")
    if isinstance(given, Mapping) and given:
        return {str(k): float(v) for k, v in given.items()}
    content = (choice.get("logprobs") or {}).get("content") or []
    offset = 0
    for token in content:
        if offset >= len(prefix.rstrip()):
            return _probs_from_tops(token, labels)
        offset += len(str(token.get("token", "")))
    return None


def _probs_from_tops(token: Mapping[str, Any], labels: list[str]) -> dict[str, float] | None:
    tops = token.get("top_logprobs") or [token]
    mass: dict[str, float] = {}
    for top in tops:
        piece = str(top.get("token", "")).strip().casefold()
        if not piece:
            continue
        owners = [label for label in labels if label.casefold().startswith(piece)]
        if len(owners) == 1:
            mass[owners[0]] = mass.get(owners[0], 0.0) + math.exp(float(top.get("logprob", -math.inf)))
    total = sum(mass.values())
    return {label: p / total for label, p in mass.items()} if total > 0 else None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_model(
    model: str,
    testset: TestSet,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    send: Send | None = None,
    options: RunOptions | None = None,
    local: bool = False,
) -> RunResult:
    """Ask `model` every example of `testset`, in order, and measure the run.

    `send` replaces the HTTP transport (see `engine_sender`); `local=True` says the model runs in this process,
    so the process's CPU seconds and memory are the model's and get reported.
    """
    opts = options or RunOptions()
    max_tokens = opts.max_tokens or default_max_tokens(testset)
    requests = [build_request(model, e.messages, max_tokens, opts) for e in testset.examples]
    caller = RemoteCaller(
        base_url=base_url,
        api_key=api_key,
        send=send,
        concurrency=opts.concurrency,
        max_retries=opts.max_retries,
        timeout=opts.timeout,
        cache_path=opts.cache_path,
        progress=opts.progress,
        description=f"eval {model}",
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = caller.chat(requests)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    prefix = testset.answer_format.prefix
    predictions = []
    for result in results:
        if result.response is None:
            predictions.append(Prediction(NO_ANSWER, error=result.error))
            continue
        choices = result.response.get("choices") or [{}]
        predictions.append(
            Prediction(
                answer=answer_text(result.response),
                label_probs=label_probs(choices[0], testset.labels, prefix),
                latency_s=result.latency_s,
            )
        )
    return RunResult(
        model=model,
        predictions=predictions,
        wall_s=wall,
        cpu_s=cpu if local else None,
        peak_rss_mb=peak_rss_mb() if local else None,
        stats=caller.stats,
    )


def _result_to_response(model: str, result: ChatResult) -> Response:
    choices = []
    for index, choice in enumerate(result.choices):
        logprobs = None
        if choice.logprobs is not None:
            logprobs = {
                "content": [
                    {
                        "token": t.token,
                        "logprob": t.logprob,
                        "top_logprobs": [{"token": top.token, "logprob": top.logprob} for top in t.top_logprobs],
                    }
                    for t in choice.logprobs
                ]
            }
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": choice.content},
                "finish_reason": choice.finish_reason,
                "logprobs": logprobs,
                "label_probs": choice.label_probs,
            }
        )
    return {
        "object": "chat.completion",
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
        "system_fingerprint": result.system_fingerprint,
    }


def engine_sender(engine: InferenceEngine, model: str) -> Send:
    """A transport that answers in this process: `model` is a checkpoint folder, a catalog name or an HF folder."""
    from localft.inference.types import ChatRequest, ModelArtifact

    path = Path(model)
    artifact = ModelArtifact(model_id=model, base_model=model)
    if path.is_dir():
        from localft.training.checkpoint import META_FILE, read_checkpoint

        if (path / META_FILE).is_file():
            artifact = ModelArtifact(model_id=model, base_model=read_checkpoint(path).base_model, checkpoint=path)

    def send(request: Request) -> Response:
        chat_request = ChatRequest(
            messages=list(request["messages"]),
            temperature=float(request.get("temperature", 0)),
            max_tokens=request.get("max_tokens"),
            logprobs=bool(request.get("logprobs", False)),
            top_logprobs=int(request.get("top_logprobs", 0)),
        )
        return _result_to_response(model, engine.chat(artifact, chat_request))

    return send
