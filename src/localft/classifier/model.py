"""A pooled classifier: members (a feature source and its linear head) whose class probabilities are averaged.

In a checkpoint folder (family `classifier`, `localft.training.checkpoint`), member i lives in `member-i/`:

    member-0/head.safetensors     the linear head (labels x features)
    member-0/encoder/             a tuned encoder's body and tokenizer (absent when frozen: the base model's own)
    member-1/tfidf.json           a TF-IDF member's vocabulary and weights

and the checkpoint's description lists the members (`Member.to_dict`). One member is a classifier of its own (frozen
embeddings + logistic regression, an LP-FT encoder, TF-IDF + logistic regression); several are an ensemble, served as
one model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from localft.classifier.features import EncoderFeatures, TfidfFeatures
from localft.classifier.head import LinearHead
from localft.errors import ModelError

MemberKind = Literal["encoder", "tfidf"]
ENCODER_FOLDER = "encoder"


@dataclass(frozen=True)
class Member:
    """What one member is; its weights are in the checkpoint's `folder`."""

    kind: MemberKind
    folder: str
    """`member-0`, ... inside the checkpoint."""
    base_model: str = ""
    """The encoder it embeds with (a catalog name or a folder); empty for TF-IDF."""
    tuned: bool = False
    """The encoder's weights were fine-tuned (kept in `folder/encoder/`), else they are the base model's."""
    max_length: int = 256
    """Tokens of a text the encoder reads."""
    weight: float = 1.0
    """Its share in the average of the members' probabilities."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Member:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    @property
    def name(self) -> str:
        """How events and tables name it: `tfidf`, `minilm-l6 frozen`, `mpnet-base tuned`."""
        if self.kind == "tfidf":
            return "tfidf"
        return f"{Path(self.base_model).name} {'tuned' if self.tuned else 'frozen'}"


Features = EncoderFeatures | TfidfFeatures
EncoderLoader = Callable[[Member, Path], EncoderFeatures]
"""Builds a member's encoder features from its checkpoint folder (`folder/member.folder`)."""


class PooledClassifier:
    """Members ready to score texts."""

    def __init__(self, members: Sequence[tuple[Member, Features, LinearHead]], multi_label: bool) -> None:
        self.members = list(members)
        self.multi_label = multi_label

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """texts x labels: the weighted mean of the members' softmax (or per-label sigmoid) probabilities."""
        total = sum(member.weight for member, _, _ in self.members)
        mean: np.ndarray | None = None
        for member, features, head in self.members:
            part = head.probabilities(features.embed(texts)) * (member.weight / total)
            mean = part if mean is None else mean + part
        assert mean is not None
        return mean

    @classmethod
    def load(
        cls, folder: Path, members: Sequence[Member], multi_label: bool, load_encoder: EncoderLoader
    ) -> PooledClassifier:
        loaded: list[tuple[Member, Features, LinearHead]] = []
        for member in members:
            where = folder / member.folder
            if not where.is_dir():
                raise ModelError(f"Checkpoint {folder} lacks {member.folder}/ ({member.name}).")
            features: Features = TfidfFeatures.load(where) if member.kind == "tfidf" else load_encoder(member, folder)
            loaded.append((member, features, LinearHead.load(where)))
        return cls(loaded, multi_label)


def save_member(folder: Path, member: Member, head: LinearHead, features: Features) -> None:
    """Write one member into a checkpoint folder being assembled; a frozen encoder writes only its head."""
    where = folder / member.folder
    where.mkdir(parents=True, exist_ok=True)
    head.save(where)
    if isinstance(features, TfidfFeatures):
        features.save(where)
    elif member.tuned:
        features.model.save_pretrained(where / ENCODER_FOLDER)
        features.tokenizer.save_pretrained(where / ENCODER_FOLDER)


def encoder_source(folder: Path, member: Member, base_dir: Path) -> Path:
    """Where a member's encoder weights and tokenizer are: its own folder when tuned, else the base model's."""
    return folder / member.folder / ENCODER_FOLDER if member.tuned else base_dir


def load_encoder_features(source: Path, device: str, max_length: int, dtype: Any = None) -> EncoderFeatures:
    """An encoder body (`AutoModel`) and its tokenizer from a folder, ready to embed."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(source, dtype=dtype or torch.float32)
    model.to(device).eval()
    return EncoderFeatures(model, AutoTokenizer.from_pretrained(source), device, max_length)
