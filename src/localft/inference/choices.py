"""From a probability distribution over fixed answers to OpenAI-shaped choices, and JSON-schema answer sets.

Pure functions (numpy only): the engine scores the answers, these decide. `temperature=0` takes the most probable
answer; higher temperatures sample from the label probabilities sharpened or flattened by the temperature, within
`top_p`, repeatably when a `seed` is given. `logprobs` carry the answer's true log-probability, and `top_logprobs`
list the other ANSWERS (never stray tokens), so they sum to 1 over the label set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from localft.errors import InvalidRequestError
from localft.inference.types import ChatChoice, ChatRequest, TokenLogprob, TopLogprob


@dataclass(frozen=True)
class Distribution:
    """Normalised log-probabilities over a fixed set of answers."""

    names: list[str]
    """The label (or enum value) each answer stands for: the keys of `label_probs`."""
    texts: list[str]
    """The text each answer adds to the conversation (the choice's `content`)."""
    logprobs: list[float]

    @classmethod
    def from_scores(cls, names: list[str], texts: list[str], scores: Sequence[float]) -> Distribution:
        raw = np.asarray(scores, dtype=np.float64)
        log_norm = raw - np.logaddexp.reduce(raw)
        return cls(names=names, texts=texts, logprobs=[float(x) for x in log_norm])

    @property
    def probs(self) -> dict[str, float]:
        return {name: float(np.exp(lp)) for name, lp in zip(self.names, self.logprobs, strict=True)}


def rng_for(request: ChatRequest) -> np.random.Generator | None:
    """The sampler of a request; none at temperature 0, whose answers are argmax (an unseeded generator reads
    the OS entropy pool, 2% of a concurrent encoder request's time)."""
    return np.random.default_rng(request.seed) if request.temperature > 0 else None


def pick(dist: Distribution, request: ChatRequest, rng: np.random.Generator | None) -> int:
    """The index of one answer: argmax at temperature 0, else a sample (within top_p) at that temperature."""
    logp = np.asarray(dist.logprobs)
    if request.temperature <= 0:
        return int(np.argmax(logp))
    tempered = logp / request.temperature
    p = np.exp(tempered - np.logaddexp.reduce(tempered))
    order = np.argsort(-p, kind="stable")
    # Nucleus: the smallest set of most probable answers whose mass reaches top_p (always at least one).
    keep = order[: int(np.searchsorted(np.cumsum(p[order]), request.top_p - 1e-12)) + 1]
    weights = p[keep] / p[keep].sum()
    assert rng is not None, "sampling needs the request's generator (rng_for)"
    return int(keep[rng.choice(len(keep), p=weights)])


def answer_logprobs(dist: Distribution, index: int, top: int) -> list[TokenLogprob]:
    """OpenAI's `logprobs.content`: the whole answer as one token, the other answers as its alternatives."""
    order = sorted(range(len(dist.names)), key=lambda i: -dist.logprobs[i])[:top]
    alternatives = [TopLogprob(dist.texts[i], dist.logprobs[i]) for i in order]
    return [TokenLogprob(dist.texts[index], dist.logprobs[index], alternatives)]


def single_choices(dist: Distribution, request: ChatRequest, render: Any = None) -> list[ChatChoice]:
    """`n` choices from one distribution; `render(index)` may turn an answer into other content (JSON)."""
    rng = rng_for(request)
    choices = []
    for _ in range(request.n):
        i = pick(dist, request, rng)
        content = render(i) if render else dist.texts[i]
        choices.append(
            ChatChoice(
                content=content,
                finish_reason="stop",
                logprobs=answer_logprobs(dist, i, request.top_logprobs) if request.logprobs else None,
                label_probs=dist.probs,
            )
        )
    return choices


def threshold_labels(
    labels: list[str], probs: Sequence[float], thresholds: Sequence[float], none_label: str | None
) -> list[str]:
    """Multi-label decision: every label at or over its threshold; none -> `none_label`, or the likeliest label."""
    cut = list(thresholds) if len(thresholds) == len(labels) else [0.5] * len(labels)
    chosen = [label for label, p, t in zip(labels, probs, cut, strict=True) if p >= t]
    if chosen:
        return chosen
    return [none_label] if none_label else [labels[int(np.argmax(probs))]]


# --- response_format -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonChoice:
    """A schema whose answer is decided by one enum: where the enum sits and its allowed values."""

    path: list[str]
    values: list[Any]

    def render(self, value: Any) -> str:
        """The smallest JSON document the schema allows with `value` at the enum's place."""
        doc: Any = value
        for key in reversed(self.path):
            doc = {key: doc}
        return json.dumps(doc, ensure_ascii=False)


def _find_enum(node: Any, path: list[str]) -> JsonChoice | None:
    if not isinstance(node, dict):
        return None
    if isinstance(node.get("enum"), list) and node["enum"]:
        return JsonChoice(path=path, values=list(node["enum"]))
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = node.get("required") or list(properties)
        for key in sorted(properties, key=lambda k: k not in required):
            found = _find_enum(properties[key], [*path, key])
            if found is not None:
                return found
    for combinator in ("anyOf", "oneOf", "allOf"):
        for option in node.get(combinator) or []:
            found = _find_enum(option, path)
            if found is not None:
                return found
    return None


def json_choice(response_format: dict[str, Any] | None) -> JsonChoice | None:
    """The enum that decides a `json_schema` response format (at any depth), if it has one."""
    if not response_format or response_format.get("type") != "json_schema":
        return None
    wrapper = response_format.get("json_schema")
    if not isinstance(wrapper, dict) or not isinstance(wrapper.get("schema"), dict):
        raise InvalidRequestError(
            "response_format.json_schema.schema must be a JSON schema object, e.g. "
            '{"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}}}.',
            param="response_format",
        )
    return _find_enum(wrapper["schema"], [])


def wants_json(response_format: dict[str, Any] | None) -> bool:
    return bool(response_format) and (response_format or {}).get("type") in ("json_object", "json_schema")


def coerce_json(text: str, key: str = "answer") -> str:
    """Free text to valid JSON: the text itself or the first object inside it when that parses, else wrapped."""
    stripped = text.strip()
    for candidate in (stripped, stripped[stripped.find("{") : stripped.rfind("}") + 1]):
        if candidate:
            try:
                json.loads(candidate)
                return candidate
            except ValueError:
                continue
    return json.dumps({key: stripped}, ensure_ascii=False)
