"""Feature sources of a pooled classifier: an encoder's sentence embeddings, or TF-IDF over words.

Sentence encoders (all-MiniLM, all-mpnet) were trained to compare mean-pooled, L2-normalised token states, so that is
the feature a linear head reads, frozen or while the encoder is tuned. TF-IDF catches the exact words and codes an
embedding blurs; its whole state (vocabulary and weights) is kept as JSON, so serving needs no pickle.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from localft.base_models import native_bf16
from localft.base_models.grouping import group_by_length

EMBED_TOKENS_PER_PASS = 8192
"""Padded tokens per inference pass when embedding many texts (bounds activation memory and the grouping's work)."""
PASS_OVERHEAD = 64
"""A forward pass's fixed cost in token-equivalents, for grouping texts by length (as `base_models.scoring`)."""


class EncoderFeatures:
    """Mean-pooled, L2-normalised token states of an encoder body (`transformers.AutoModel`)."""

    def __init__(self, model: Any, tokenizer: Any, device: str, max_length: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.pad_id = tokenizer.pad_token_id or 0

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return [list(i) for i in ids]

    def pooled(self, ids: Sequence[Sequence[int]]) -> Any:
        """The features of one batch of token ids as a float32 tensor, differentiable when grad is on."""
        import torch

        width = max(len(i) for i in ids)
        batch = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, row_ids in enumerate(ids):
            batch[row, : len(row_ids)] = torch.tensor(row_ids)
            mask[row, : len(row_ids)] = 1
        with self.autocast():
            hidden = self.model(input_ids=batch.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        weights = mask.to(hidden.device).unsqueeze(-1).float()
        mean = (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(mean, dim=-1)

    def embed_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Features of many tokenized texts, in their order, computed in passes grouped by length."""
        import torch

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not ids:
            return out
        lengths = [len(i) for i in ids]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for group in group_by_length(range(len(ids)), lengths, EMBED_TOKENS_PER_PASS, PASS_OVERHEAD):
                    out[group] = self.pooled([ids[i] for i in group]).cpu().numpy()
        finally:
            self.model.train(was_training)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_ids(self.token_ids(texts))

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 matrix multiplies where the device has them natively (the weights stay as loaded)."""
        import torch

        if native_bf16(self.device):
            device_type = "cuda" if self.device.startswith("cuda") else "cpu"
            with torch.autocast(device_type, dtype=torch.bfloat16):
                yield
        else:
            yield


class TfidfFeatures:
    """Word uni- and bigram TF-IDF (sublinear term frequency, L2-normalised rows), fitted on the training texts."""

    FILE = "tfidf.json"

    def __init__(self, vectorizer: Any) -> None:
        self.vectorizer = vectorizer

    @classmethod
    def fit(cls, texts: Sequence[str]) -> TfidfFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        vectorizer.fit(list(texts))
        return cls(vectorizer)

    @property
    def dim(self) -> int:
        return len(self.vectorizer.vocabulary_)

    def embed(self, texts: Sequence[str]) -> Any:
        """A sparse matrix (texts x vocabulary)."""
        return self.vectorizer.transform(list(texts))

    def save(self, folder: Path) -> None:
        v = self.vectorizer
        state = {
            "ngram_range": list(v.ngram_range),
            "sublinear_tf": v.sublinear_tf,
            "lowercase": v.lowercase,
            "vocabulary": {term: int(i) for term, i in v.vocabulary_.items()},
            "idf": [float(x) for x in v.idf_],
        }
        (folder / self.FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, folder: Path) -> TfidfFeatures:
        from sklearn.feature_extraction.text import TfidfVectorizer

        state = json.loads((folder / cls.FILE).read_text())
        vectorizer = TfidfVectorizer(
            ngram_range=tuple(state["ngram_range"]),
            sublinear_tf=state["sublinear_tf"],
            lowercase=state["lowercase"],
            vocabulary=state["vocabulary"],
        )
        vectorizer.idf_ = np.asarray(state["idf"], dtype=np.float64)
        return cls(vectorizer)
