"""A localft pooled classifier as a Hugging Face model: written into every exported classifier as
`modeling_localft.py`, so it imports only torch, transformers and numpy (never localft).

localft's classifiers read mean-pooled, L2-normalised token states through a linear head, and an ensemble averages
its members' probabilities (softmax, or a sigmoid per label); BERT's own sequence-classification head reads the CLS
pooler instead, so a faithful export needs this code. Members:

    encoder   its body (`encoders.<i>`, any `AutoModel`), its tokenizer in `member-<i>/`, its head `heads.<i>`
    tfidf     word uni- and bigram TF-IDF (sublinear tf, L2 rows; vocabulary and idf in `member-<i>/tfidf.json`)

`LocalftPooledForSequenceClassification.predict(texts)` gives the probabilities; `LocalftTextClassificationPipeline`
makes `transformers.pipeline("text-classification", model=DIR, trust_remote_code=True)` tokenize each member's own
way (texts cut at the member's length, TF-IDF from the raw text).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.pipelines.text_classification import TextClassificationPipeline

TFIDF_FILE = "tfidf.json"
_WORDS = re.compile(r"(?u)\b\w\w+\b")
"""scikit-learn's default token pattern (words of two or more characters), which localft's TF-IDF was fitted with."""


class LocalftPooledConfig(PretrainedConfig):  # type: ignore[misc,no-untyped-call]
    """Labels (`id2label`), `problem_type`, the members and the multi-label `thresholds`."""

    model_type = "localft_pooled"

    def __init__(
        self, members: list[dict[str, Any]] | None = None, thresholds: list[float] | None = None, **kwargs: Any
    ) -> None:
        self.members = members or []
        """One dict per member: kind (`encoder`|`tfidf`), folder, weight, max_length, and `encoder` (the body's
        config as a dict) or `vocab_size`."""
        self.thresholds = thresholds or []
        """Per-label decision thresholds of a multi-label classifier (a label is on at or over its threshold)."""
        super().__init__(**kwargs)


class LocalftPooledForSequenceClassification(PreTrainedModel):  # type: ignore[misc,no-untyped-call]
    """Mean-pooled encoders and TF-IDF, each through a linear head, averaged."""

    config_class = LocalftPooledConfig
    base_model_prefix = "localft"
    main_input_name = "input_ids"

    def __init__(self, config: LocalftPooledConfig) -> None:
        super().__init__(config)
        self.encoders = torch.nn.ModuleDict()
        heads = []
        for i, member in enumerate(config.members):
            if member["kind"] == "encoder":
                body_config = AutoConfig.for_model(**member["encoder"])
                self.encoders[str(i)] = AutoModel.from_config(body_config)  # type: ignore[no-untyped-call]
                width = int(body_config.hidden_size)
            else:
                width = int(member["vocab_size"])
            heads.append(torch.nn.Linear(width, int(getattr(config, "num_labels", 0))))
        self.heads = torch.nn.ModuleList(heads)
        self._tokenizers: dict[int, Any] = {}
        self._tfidf: dict[int, dict[str, Any]] = {}
        self.post_init()  # type: ignore[no-untyped-call]

    @property
    def multi_label(self) -> bool:
        return bool(self.config.problem_type == "multi_label_classification")

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        **member_inputs: Any,
    ) -> SequenceClassifierOutput:
        """Logits whose softmax (or sigmoid) is the members' mean probability; member i reads `input_ids_<i>` and
        `attention_mask_<i>` (else `input_ids`, `attention_mask`), or `tfidf_<i>`."""
        parts = []
        heads: Any = self.heads
        for i, member in enumerate(self.config.members):
            if member["kind"] == "encoder":
                ids = member_inputs.get(f"input_ids_{i}", input_ids)
                mask = member_inputs.get(f"attention_mask_{i}", attention_mask)
                if mask is None:
                    mask = torch.ones_like(ids)
                features = self._pooled(i, ids, mask)
            else:
                features = member_inputs[f"tfidf_{i}"]
            parts.append(heads[i](features.to(heads[i].weight.dtype)).float())
        if len(parts) == 1:
            return SequenceClassifierOutput(logits=parts[0])
        weights = [float(m.get("weight", 1.0)) for m in self.config.members]
        total = sum(weights)
        squash = torch.sigmoid if self.multi_label else (lambda x: torch.softmax(x, dim=-1))
        mean = sum(squash(p) * (w / total) for p, w in zip(parts, weights, strict=True))
        assert isinstance(mean, torch.Tensor)
        mean = mean.clamp(1e-12, 1 - 1e-7) if self.multi_label else mean.clamp_min(1e-30)
        logits = torch.log(mean) - torch.log1p(-mean) if self.multi_label else torch.log(mean)
        return SequenceClassifierOutput(logits=logits)

    def _pooled(self, i: int, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoders[str(i)](input_ids=ids, attention_mask=mask).last_hidden_state.float()
        weights = mask.unsqueeze(-1).float()
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    # --- raw texts in ------------------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Every member's inputs for `texts`, each tokenized the way localft does (cut at the member's length)."""
        inputs: dict[str, torch.Tensor] = {}
        for i, member in enumerate(self.config.members):
            if member["kind"] == "encoder":
                tokens = self._tokenizer(i)(
                    texts, truncation=True, max_length=int(member["max_length"]), padding=True, return_tensors="pt"
                )
                inputs[f"input_ids_{i}"] = tokens["input_ids"]
                inputs[f"attention_mask_{i}"] = tokens["attention_mask"]
            else:
                inputs[f"tfidf_{i}"] = torch.from_numpy(self._tfidf_rows(i, texts))
        return inputs

    @torch.inference_mode()
    def predict(self, texts: list[str]) -> np.ndarray:
        """texts x labels probabilities (softmax, or a sigmoid per label when multi-label)."""
        inputs = {k: v.to(self.device) for k, v in self.encode(texts).items()}
        logits = self(**inputs).logits.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)
        return np.asarray(probs.cpu().numpy())

    def _folder(self, i: int) -> str:
        return os.path.join(str(self.config.name_or_path), str(self.config.members[i]["folder"]))

    def _tokenizer(self, i: int) -> Any:
        if i not in self._tokenizers:
            self._tokenizers[i] = AutoTokenizer.from_pretrained(self._folder(i))
        return self._tokenizers[i]

    def _tfidf_rows(self, i: int, texts: list[str]) -> np.ndarray:
        """scikit-learn's `TfidfVectorizer.transform` for a fitted state: counts of known n-grams, 1 + log(count),
        times idf, rows scaled to unit length."""
        if i not in self._tfidf:
            with open(os.path.join(self._folder(i), TFIDF_FILE), encoding="utf-8") as handle:
                self._tfidf[i] = json.load(handle)
        state = self._tfidf[i]
        vocabulary: dict[str, int] = state["vocabulary"]
        idf = np.asarray(state["idf"], dtype=np.float64)
        low, high = state["ngram_range"]
        rows = np.zeros((len(texts), len(idf)), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORDS.findall(text.lower() if state["lowercase"] else text)
            counts: dict[int, int] = {}
            for n in range(low, high + 1):
                for start in range(len(words) - n + 1):
                    column = vocabulary.get(" ".join(words[start : start + n]))
                    if column is not None:
                        counts[column] = counts.get(column, 0) + 1
            values = {c: (1.0 + math.log(k) if state["sublinear_tf"] else float(k)) * idf[c] for c, k in counts.items()}
            norm = math.sqrt(sum(v * v for v in values.values()))
            for column, value in values.items():
                rows[row, column] = value / norm if norm else 0.0
        return rows


class LocalftTextClassificationPipeline(TextClassificationPipeline):  # type: ignore[misc]
    """The text-classification pipeline with each member's own inputs (`...ForSequenceClassification.encode`)."""

    _load_tokenizer = None  # type: ignore[assignment]
    """Optional: members load their own tokenizers, and a TF-IDF classifier has none."""

    def preprocess(self, inputs: Any, **tokenizer_kwargs: Any) -> Any:  # type: ignore[override]
        model: Any = self.model
        return model.encode([inputs if isinstance(inputs, str) else str(inputs)])
