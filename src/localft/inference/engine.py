"""The inference engine behind `/v1/chat/completions`, usable on its own from Python.

    engine = InferenceEngine(settings.cache_dir)
    result = engine.chat(ModelArtifact("ft:...", "smollm2-135m-instruct", checkpoint_dir), ChatRequest(messages))

What answers depends on the model and the request:

- a classifier checkpoint scores its labels (causal LMs: label log-probabilities after the prompt; encoders: the
  classification head), so it always answers inside its label set, multi-label ones with a valid label set;
- a `response_format` JSON schema with an enum scores the enum values, for any causal LM (base models included)
  and zero-shot for base encoders (embedding similarity);
- everything else generates freely.

A scored answer is atomic: `max_tokens`, `stop` and `logit_bias` shape free generation only, since cutting or
biasing a label would make it invalid. `logprobs` of a scored answer hold the whole answer as one "token" whose
`top_logprobs` are the other answers; multi-label answers of causal LMs carry `label_probs` (the probability of each
label when it was decided) but no `logprobs`. Label probabilities are exact for the weights as held: bf16 where the
device has it, int8 linear layers where the precision policy says so (precision.py).

Thread-safe: requests from many threads share one compute lock, label scoring of concurrent requests is batched
(batching.py), and every forward pass runs on one compute thread whichever request asked for it (compute_thread.py
says why). Weights live in a memory-bounded LRU cache shared by all requests (models.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from localft.base_models import resolve_device
from localft.base_models.scoring import (
    ScoreRow,
    build_row,
    encoder_embeddings,
    encoder_logits,
    prefix_cache,
    score_rows,
)
from localft.base_models.templates import Prompt, encoder_text, render_prompt
from localft.classifier.head import probabilities
from localft.errors import InvalidRequestError
from localft.inference import choices as ch
from localft.inference.batching import Combiner
from localft.inference.compute_thread import ComputeThread
from localft.inference.generate import generate
from localft.inference.models import DEFAULT_MAX_MEMORY_BYTES, ModelInfo, WeightCache, describe
from localft.inference.prompt import continuation, shared_prefix_text
from localft.inference.types import ChatChoice, ChatRequest, ChatResult, ModelArtifact
from localft.settings import Int8Policy

JobKind = Literal["causal", "encoder", "embed", "classifier"]
MAX_PREFIXES = 32
"""Cached KV states of shared prompt prefixes (a system prompt is a few MB of KV at most)."""
MIN_PROBABILITY = 1e-30
"""The least probability a label's log-probability is taken of (a sigmoid or an average can round to 0)."""
MAX_SEEN_ARTIFACTS = 1024
"""Model ids remembered as already described (they are few, but a caller could mint many)."""


@dataclass(frozen=True)
class _Job:
    """One request's share of a batch: score candidate answers (causal), or run texts through an encoder."""

    info: ModelInfo
    kind: JobKind
    row: ScoreRow | None = None
    ids: tuple[list[int], ...] = ()
    """Encoder jobs: the token ids of each text, truncated to what the model reads."""
    texts: tuple[str, ...] = ()
    """Classifier jobs: the texts to classify."""


class InferenceEngine:
    """Answers chat requests for base models and fine-tuned checkpoints."""

    def __init__(
        self,
        cache_dir: Path,
        device: str = "auto",
        max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
        int8: Int8Policy = "auto",
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.device = resolve_device(device)
        self._lock = threading.RLock()
        self._weights = WeightCache(self.device, max_memory_bytes, int8)
        self._infos: dict[str, ModelInfo] = {}
        self._infos_lock = threading.Lock()
        self._seen: dict[ModelArtifact, ModelInfo] = {}  # artifacts as requests name them -> _infos' entries
        self._prefixes: OrderedDict[tuple[str, tuple[int, ...]], Any] = OrderedDict()
        self.compute = ComputeThread()
        """Where every forward pass and weight load runs (see compute_thread.py)."""
        self.scorer: Combiner[_Job, Any] = Combiner(lambda jobs: self.compute.run(self._run_batch, jobs), self._lock)

    # --- public ---------------------------------------------------------------------------------------------

    def chat(self, artifact: ModelArtifact, request: ChatRequest) -> ChatResult:
        """Answer one chat completion request."""
        _check(request)
        with self.scorer.serving():  # a batch about to run waits for this request to join it
            info = self.describe(artifact)
            fmt = ch.json_choice(request.response_format)
            if info.family == "classifier":
                return self._classifier_chat(info, request, fmt)
            if info.family == "encoder":
                return self._encoder_chat(info, request, fmt)
            labels = info.labels
            messages = info.shape.as_trained(request.messages) if labels and info.shape else request.messages
            prompt = render_prompt(info.tokenizer, messages, info.template)
            if labels and info.meta and info.meta.multi_label and fmt is None:
                return self._multi_label_chat(info, request, prompt)
            if labels and (fmt is None or _overlap(fmt, labels)):
                return self._label_chat(info, request, prompt, fmt)
            if fmt is not None:
                return self._enum_chat(info, request, prompt, fmt)
        return self._generate_chat(info, request, prompt)  # generation is not batched: nothing to wait for

    def describe(self, artifact: ModelArtifact) -> ModelInfo:
        """The model's family, tokenizer and checkpoint description (cached; weights load on first use)."""
        seen = self._seen.get(artifact)  # resolving the folder's path again took 5% of a request's time
        if seen is not None:
            return seen
        key = str(Path(artifact.checkpoint).resolve()) if artifact.checkpoint else f"base:{artifact.base_model}"
        with self._infos_lock:
            info = self._infos.get(key)
            if info is None:
                info = self._infos[key] = describe(artifact, self.cache_dir)
            if len(self._seen) >= MAX_SEEN_ARTIFACTS:
                self._seen.clear()
            self._seen[artifact] = info
        return info

    def evict(self, checkpoint_dir: Path) -> bool:
        """Forget a checkpoint's weights (e.g. its model was deleted); True when it was loaded."""
        key = str(Path(checkpoint_dir).resolve())
        with self._infos_lock:
            self._infos.pop(key, None)
            self._seen = {a: i for a, i in self._seen.items() if i.key != key}
        with self._lock:
            for stale in [k for k in self._prefixes if k[0] == key]:
                del self._prefixes[stale]
            return self._weights.evict(key)

    @property
    def loaded(self) -> list[str]:
        """Keys of models and adapters in memory, least recently used first."""
        with self._lock:
            return self._weights.loaded_keys()

    @property
    def memory_bytes(self) -> int:
        with self._lock:
            return self._weights.used_bytes

    # --- classification -------------------------------------------------------------------------------------

    def _label_chat(
        self, info: ModelInfo, request: ChatRequest, prompt: Prompt, fmt: ch.JsonChoice | None
    ) -> ChatResult:
        assert info.meta is not None
        allowed = [label for label in info.labels if fmt is None or label in _strings(fmt.values)]
        prefix = info.meta.assistant_prefix if fmt is None else ""
        texts = [continuation(prefix, label, prompt.partial) for label in allowed]
        row = build_row(info.tokenize, prompt, [t + info.terminator for t in texts], self._shared(info, request))
        scores = self.scorer.submit(_Job(info, "causal", row=row))
        dist = ch.Distribution.from_scores(allowed, texts, scores)
        render = (lambda i: fmt.render(_enum_value(fmt, allowed[i]))) if fmt else None
        return self._result(info, request, ch.single_choices(dist, request, render), row.prompt_tokens)

    def _enum_chat(self, info: ModelInfo, request: ChatRequest, prompt: Prompt, fmt: ch.JsonChoice) -> ChatResult:
        names = [_as_text(v) for v in fmt.values]
        texts = [continuation("", fmt.render(v), prompt.partial) for v in fmt.values]
        row = build_row(info.tokenize, prompt, [t + info.terminator for t in texts], self._shared(info, request))
        dist = ch.Distribution.from_scores(names, texts, self.scorer.submit(_Job(info, "causal", row=row)))
        return self._result(info, request, ch.single_choices(dist, request), row.prompt_tokens)

    def _multi_label_chat(self, info: ModelInfo, request: ChatRequest, prompt: Prompt) -> ChatResult:
        """Constrained decoding over the label set: labels in their trained order, each at most once, then stop."""
        assert info.meta is not None
        meta = info.meta
        labels = [label for label in info.labels if label != meta.none_label]
        rng = ch.rng_for(request)
        picks: list[tuple[str, dict[str, float]]] = []
        for _ in range(1 if request.temperature <= 0 else request.n):
            picks.append(self._decode_label_set(info, request, prompt, labels, rng))
        picks = picks * request.n if request.temperature <= 0 else picks
        out = [
            ChatChoice(content=content, finish_reason="stop", label_probs=probs, logprobs=None)
            for content, probs in picks
        ]
        return self._result(info, request, out, len(info.tokenize(prompt.text)["input_ids"]))

    def _decode_label_set(
        self,
        info: ModelInfo,
        request: ChatRequest,
        prompt: Prompt,
        labels: list[str],
        rng: np.random.Generator | None,
    ) -> tuple[str, dict[str, float]]:
        assert info.meta is not None
        meta, end = info.meta, info.terminator
        first = [continuation(meta.assistant_prefix, label, prompt.partial) for label in labels]
        names, texts = list(labels), list(first)
        if meta.none_label:
            names.append(meta.none_label)
            texts.append(continuation(meta.assistant_prefix, meta.none_label, prompt.partial) + end)
        written, last, probs = "", -1, dict.fromkeys(labels, 0.0)
        while names:
            step_prompt = replace(prompt, text=prompt.text + written)
            row = build_row(info.tokenize, step_prompt, texts, self._shared(info, request))
            dist = ch.Distribution.from_scores(names, texts, self.scorer.submit(_Job(info, "causal", row=row)))
            probs.update({k: v for k, v in dist.probs.items() if k in probs})
            i = ch.pick(dist, request, rng)
            if names[i] in (meta.none_label, "\x00end"):
                break
            written += texts[i]
            last = labels.index(names[i])
            rest = labels[last + 1 :]
            names = [*rest, "\x00end"]
            texts = [meta.label_separator + label for label in rest] + [end]
            if not rest:
                break
        content = written or continuation(meta.assistant_prefix, meta.none_label or "", prompt.partial)
        return content, probs

    def _encoder_chat(self, info: ModelInfo, request: ChatRequest, fmt: ch.JsonChoice | None) -> ChatResult:
        text = info.shape.payload(request.messages) if info.shape else encoder_text(request.messages)
        ids, n_tokens = _encoder_ids(info, text)
        if not info.labels:
            return self._encoder_zero_shot(info, request, fmt, ids, n_tokens)
        assert info.meta is not None
        logits = np.asarray(self.scorer.submit(_Job(info, "encoder", ids=(ids,)))[0], dtype=np.float64)
        return self._answer_labels(info, request, fmt, probabilities(logits, info.meta.multi_label), n_tokens)

    def _classifier_chat(self, info: ModelInfo, request: ChatRequest, fmt: ch.JsonChoice | None) -> ChatResult:
        text = info.shape.payload(request.messages) if info.shape else encoder_text(request.messages)
        n_tokens = len(info.tokenize(text)["input_ids"])
        probs = self.scorer.submit(_Job(info, "classifier", texts=(text,)))
        return self._answer_labels(info, request, fmt, np.asarray(probs, dtype=np.float64), n_tokens)

    def _answer_labels(
        self, info: ModelInfo, request: ChatRequest, fmt: ch.JsonChoice | None, probs: np.ndarray, n_tokens: int
    ) -> ChatResult:
        """The answer of a classifier that gives a probability per label (softmax, or a sigmoid each when
        multi-label): the most probable (or sampled) label, or the labels over their thresholds."""
        meta = info.meta
        assert meta is not None
        if meta.multi_label and fmt is None:
            chosen = ch.threshold_labels(info.labels, [float(p) for p in probs], meta.thresholds, meta.none_label)
            content = meta.assistant_prefix + meta.label_separator.join(chosen)
            label_probs = {label: float(p) for label, p in zip(info.labels, probs, strict=True)}
            choice = ChatChoice(content=content, finish_reason="stop", label_probs=label_probs)
            return self._result(info, request, [choice] * request.n, n_tokens)
        keep = [i for i, label in enumerate(info.labels) if fmt is None or label in _strings(fmt.values)]
        if not keep:
            raise InvalidRequestError(
                f"response_format enum shares no value with this classifier's labels {info.labels}.",
                param="response_format",
            )
        names = [info.labels[i] for i in keep]
        texts = [continuation(meta.assistant_prefix if fmt is None else "", n, "") for n in names]
        scores = [float(np.log(max(probs[i], MIN_PROBABILITY))) for i in keep]
        dist = ch.Distribution.from_scores(names, texts, scores)
        render = (lambda i: fmt.render(_enum_value(fmt, names[i]))) if fmt else None
        return self._result(info, request, ch.single_choices(dist, request, render), n_tokens)

    def _encoder_zero_shot(
        self, info: ModelInfo, request: ChatRequest, fmt: ch.JsonChoice | None, ids: list[int], n_tokens: int
    ) -> ChatResult:
        """A base encoder cannot write text; with an enum it picks the value closest to the input in meaning."""
        if fmt is None:
            raise InvalidRequestError(
                f"{info.base_dir.name} is an encoder: fine-tune it first, or pass a response_format JSON schema "
                "whose enum lists the answers to choose from.",
                param="model",
            )
        names = [_as_text(v) for v in fmt.values]
        vectors = self.scorer.submit(_Job(info, "embed", ids=(ids, *(_encoder_ids(info, n)[0] for n in names))))
        # Cosine similarity scaled like a contrastive logit (sentence encoders are trained with a scale near 20).
        scores = [20.0 * float(np.dot(vectors[0], v)) for v in vectors[1:]]
        dist = ch.Distribution.from_scores(names, [fmt.render(v) for v in fmt.values], scores)
        return self._result(info, request, ch.single_choices(dist, request), n_tokens)

    # --- generation -----------------------------------------------------------------------------------------

    def _generate_chat(self, info: ModelInfo, request: ChatRequest, prompt: Prompt) -> ChatResult:
        def run() -> tuple[list[Any], int]:
            with self._weights.running(info) as model:
                return generate(model, info.tokenizer, info.tokenize, prompt, request, info.terminator, self.device)

        with self._lock:
            outputs, prompt_tokens = self.compute.run(run)
        as_json = ch.wants_json(request.response_format)
        out = [
            ChatChoice(
                content=ch.coerce_json(g.text) if as_json else g.text,
                finish_reason=g.finish_reason,
                logprobs=g.logprobs,
            )
            for g in outputs
        ]
        completion = sum(g.tokens for g in outputs)
        return ChatResult(out, prompt_tokens, completion, info.fingerprint)

    # --- batching -------------------------------------------------------------------------------------------

    def _run_batch(self, jobs: Sequence[_Job]) -> list[Any]:
        """Run pending jobs grouped by model (called by the combiner under the compute lock)."""
        results: list[Any] = [None] * len(jobs)
        groups: dict[tuple[str, JobKind], list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault((job.info.key, job.kind), []).append(i)
        for (_, kind), members in groups.items():
            info = jobs[members[0]].info
            try:
                outputs = self._run_group(info, kind, [jobs[i] for i in members])
            except Exception as exc:  # one model failing must not fail the other models' requests
                outputs = [exc] * len(members)
            for i, output in zip(members, outputs, strict=True):
                results[i] = output
        return results

    def _run_group(self, info: ModelInfo, kind: JobKind, jobs: list[_Job]) -> list[Any]:
        if kind == "causal":
            pad = info.tokenizer.pad_token_id
            pad = pad if pad is not None else (info.tokenizer.eos_token_id or 0)
            rows = [job.row for job in jobs if job.row is not None]
            by_prefix: dict[tuple[int, ...], list[int]] = {}
            for i, row in enumerate(rows):
                by_prefix.setdefault(tuple(row.prompt_ids[: row.shared_prefix]), []).append(i)
            scores: list[Any] = [None] * len(rows)
            with self._weights.running(info) as model:
                for prefix_ids, members in by_prefix.items():
                    prefix = (len(prefix_ids), self._prefix_kv(info, model, prefix_ids)) if prefix_ids else None
                    out = score_rows(model, [rows[i] for i in members], pad, self.device, prefix)
                    for i, row_scores in zip(members, out, strict=True):
                        scores[i] = row_scores
            return scores
        if kind == "classifier":
            probs = self._weights.classifier(info).probabilities([t for job in jobs for t in job.texts])
            return [probs[i] for i in range(len(jobs))]  # one text per classifier job
        model = self._weights.encoder(info)
        ids = [i for job in jobs for i in job.ids]
        run = encoder_logits if kind == "encoder" else encoder_embeddings
        out = run(model, ids, self.device, info.tokenizer.pad_token_id or 0).numpy()
        split, start = [], 0
        for job in jobs:
            split.append(out[start : start + len(job.ids)])
            start += len(job.ids)
        return split

    def _prefix_kv(self, info: ModelInfo, model: Any, prefix_ids: tuple[int, ...]) -> Any:
        """The cached KV of a shared prompt prefix for this model (adapter included), computed on first use."""
        key = (info.key, prefix_ids)
        if key in self._prefixes:
            self._prefixes.move_to_end(key)
        else:
            self._prefixes[key] = prefix_cache(model, prefix_ids, self.device)
            while len(self._prefixes) > MAX_PREFIXES:
                self._prefixes.popitem(last=False)
        return self._prefixes[key]

    # --- helpers --------------------------------------------------------------------------------------------

    def _shared(self, info: ModelInfo, request: ChatRequest) -> str:
        return shared_prefix_text(info.tokenizer, request.messages, info.template)

    def _result(self, info: ModelInfo, request: ChatRequest, out: list[ChatChoice], prompt_tokens: int) -> ChatResult:
        completion = sum(info.count_tokens(c.content) for c in out)
        return ChatResult(out, prompt_tokens, completion, info.fingerprint)


def _encoder_ids(info: ModelInfo, text: str) -> tuple[list[int], int]:
    """The token ids an encoder reads for `text` (cut at the checkpoint's length), and the text's own token count
    (usage), which needs a second tokenization only when the text was cut."""
    max_length = info.meta.max_length if info.meta else 512
    ids = list(info.tokenize(text, truncation=True, max_length=max_length)["input_ids"])
    n_tokens = len(ids) if len(ids) < max_length else len(info.tokenize(text, truncation=True)["input_ids"])
    return ids, n_tokens


def _check(request: ChatRequest) -> None:
    """The request fields the engine relies on; the API validates the wire format before this."""
    problems = [
        ("messages", not request.messages, "messages must contain at least one message"),
        ("n", request.n < 1, "n must be at least 1"),
        ("temperature", not 0 <= request.temperature <= 2, "temperature must be between 0 and 2"),
        ("top_p", not 0 < request.top_p <= 1, "top_p must be in (0, 1]"),
        ("top_logprobs", not 0 <= request.top_logprobs <= 20, "top_logprobs must be between 0 and 20"),
        ("max_tokens", request.max_tokens is not None and request.max_tokens < 1, "max_tokens must be at least 1"),
    ]
    for param, bad, message in problems:
        if bad:
            raise InvalidRequestError(message + ".", param=param)


def _strings(values: Sequence[Any]) -> set[str]:
    return {_as_text(v) for v in values}


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _enum_value(fmt: ch.JsonChoice, label: str) -> Any:
    return next(v for v in fmt.values if _as_text(v) == label)


def _overlap(fmt: ch.JsonChoice, labels: list[str]) -> bool:
    return bool(_strings(fmt.values) & set(labels))
