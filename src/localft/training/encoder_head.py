"""Fine-tuning an encoder (MiniLM, MPNet, any BERT-like folder) as a pooled classifier: LP-FT.

The classifier reads the mean-pooled, L2-normalised token states (what sentence encoders were trained to produce)
through a linear head (`localft.classifier`). The head starts as a logistic regression fitted on the frozen
encoder's features (a linear probe), then encoder and head are tuned together: "LP-FT" (Kumar et al. 2022), which
keeps the pretrained features from being distorted by the gradients of a random head, and starts from the
frozen-embedding baseline rather than below it.

The input is the varying part of the user messages (`base_models.prompt_shape`, as inference reads a request); the
labels come from the assistant answers. Single-label tasks use softmax and cross-entropy, multi-label tasks a sigmoid
per label with binary cross-entropy and a per-label decision threshold, tuned on the validation set when there is one
(else 0.5, or what the caller set). Class weights (inverse frequency) counter imbalance when asked for.

A checkpoint holds the tuned encoder as member 0 of a pooled classifier; fixed members (`Companion`: frozen encoders
or TF-IDF with fitted heads) may join it, and then validation scores, and the checkpoint serves, their average.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from localft.base_models.prompt_shape import PromptShape
from localft.classifier.crossval import log_loss, make_folds, out_of_fold
from localft.classifier.features import EncoderFeatures, TfidfFeatures
from localft.classifier.head import PROBE_C, HeadRecipe, LinearHead, build_head, calibrated, label_words
from localft.classifier.model import ENCODER_FOLDER, Member, save_member
from localft.eval.metrics import classification_metrics, multilabel_metrics
from localft.training.dataset import ChatExample
from localft.training.kernels import attention_for_width, use_fast_dropout
from localft.training.loop import BatchLoss, Evaluation, ParameterGroup
from localft.training.task import TaskInfo

THRESHOLD_GRID = [i / 20 for i in range(1, 20)]
"""Candidate multi-label thresholds, 0.05 to 0.95."""
MIN_F1_GAIN = 0.1
"""How much better than labelling every example positive a tuned threshold's validation F1 must be."""
ATTENTION_DROPOUT: float | None = 0.0
"""Dropout on the attention weights while fine-tuning, in place of the model's own (0.1 for MiniLM and MPNet), or
None to keep the model's. 0 by measurement: faster steps and no accuracy lost (docs/studies)."""
ATTENTION_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attention_dropout")
"""Where BERT-like configs (BERT, RoBERTa, MPNet, DeBERTa; DistilBERT, ModernBERT) keep their attention dropout."""
HIDDEN_DROPOUT: float | None = 0.0
"""Dropout on the hidden states, in place of the model's own (0.1 for MiniLM and MPNet), or None to keep the
model's. 0 by measurement: higher scores on emotion and banking77 and faster steps (docs/studies)."""
HIDDEN_DROPOUT_FIELDS = ("hidden_dropout_prob", "dropout")
"""Where BERT-like configs (BERT, RoBERTa, MPNet, DeBERTa; DistilBERT) keep their hidden-state dropout."""
TRAIN_WORD_EMBEDDINGS = True
"""Whether fine-tuning updates the word embedding matrix (MiniLM: half its weights) or leaves it frozen. Trained by
measurement: frozen, scores fell on four of five datasets (docs/studies)."""
MEMBER = "member-0"
"""The tuned encoder's folder in a checkpoint (`localft.classifier.model`)."""


@dataclass(frozen=True)
class EncoderItem:
    """One example: its text, token ids and gold label index (single-label) or label indicator row (multi-label)."""

    text: str
    input_ids: list[int]
    target: tuple[int, ...]


@dataclass
class Companion:
    """A fixed member of the classifier beside the tuned encoder: its features and fitted head (not trained here)."""

    member: Member
    features: EncoderFeatures | TfidfFeatures
    head: LinearHead


class EncoderLearner:
    """A mean-pooled encoder with a linear head (LP-FT); implements `loop.Learner`."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: Any,
        task: TaskInfo,
        device: str,
        max_length: int,
        class_weights: bool = False,
        base_model: str = "",
        shape: PromptShape | None = None,
    ) -> None:
        from transformers import AutoConfig, AutoModel

        self.task = task
        self.device = device
        self.max_length = max_length
        self.base_model = base_model or str(model_dir)
        self.shape = shape or PromptShape()
        self.compiled_layers = False
        """Set once `training.compilation` compiled the model's layers: training passes pick attention for them."""
        self.labels = list(task.labels)
        self.thresholds = [0.5] * len(self.labels) if task.multi_label else []
        config = AutoConfig.from_pretrained(model_dir)
        for fields, chosen in ((ATTENTION_DROPOUT_FIELDS, ATTENTION_DROPOUT), (HIDDEN_DROPOUT_FIELDS, HIDDEN_DROPOUT)):
            for field in fields if chosen is not None else ():
                if isinstance(getattr(config, field, None), (int, float)):
                    setattr(config, field, chosen)
        self.model: Any = AutoModel.from_pretrained(model_dir, config=config, dtype=torch.float32)
        self.model.to(device)
        if not TRAIN_WORD_EMBEDDINGS:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        use_fast_dropout(self.model)
        self.features = EncoderFeatures(self.model, tokenizer, device, max_length)
        self.head = torch.nn.Linear(self.features.dim, len(self.labels)).to(device)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.companions: list[Companion] = []
        self._companion_probs: dict[str, np.ndarray] = {}
        self.class_weights = class_weights
        self._weights: torch.Tensor | None = None

    @property
    def tokenizer(self) -> Any:
        return self.features.tokenizer

    def make_items(self, examples: Sequence[ChatExample]) -> list[EncoderItem]:
        texts = [self.shape.payload(ex.context) for ex in examples]
        ids = self.features.token_ids(texts)
        return [EncoderItem(t, i, self._target(ex.answer)) for t, i, ex in zip(texts, ids, examples, strict=True)]

    def _target(self, answer: str) -> tuple[int, ...]:
        if self.task.multi_label:
            named = set(self.task.label_set(answer))
            return tuple(int(label in named) for label in self.labels)
        label = self.task.label_of(answer).strip()
        return (self.labels.index(label) if label in self.labels else -1,)

    def start_head(self, items: Sequence[EncoderItem], recipe: HeadRecipe | None = None, seed: int = 0) -> None:
        """The head starts as a head over the frozen encoder's features: by default the linear probe (a logistic
        regression), or as `recipe` says (`auto` passes the recipe that cross-validated best for this encoder);
        calibrated to be as confident on these examples as it is, cross-validated, on examples it has not seen."""
        known = [it for it in items if it.target[0] >= 0 or self.task.multi_label]
        if not known:
            return
        recipe = recipe or HeadRecipe()
        features = self.features.embed_ids([it.input_ids for it in known])
        names = self.features.embed([label_words(label) for label in self.labels]) if recipe.names else None
        targets = self._targets_array(known)
        n_labels, multi = len(self.labels), self.task.multi_label

        def fold(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
            head = build_head(recipe, features[train_idx], targets[train_idx], n_labels, multi, PROBE_C, names)
            return head.probabilities(features[test_idx])

        start = build_head(recipe, features, targets, n_labels, multi, PROBE_C, names)
        if len(known) >= 4:
            oof = out_of_fold(len(known), n_labels, make_folds(targets, multi, seed), fold)
            start = calibrated(start, features, targets, log_loss(oof, targets, multi))
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(start.weight))
            self.head.bias.copy_(torch.from_numpy(start.bias))

    def _targets_array(self, items: Sequence[EncoderItem]) -> np.ndarray:
        if self.task.multi_label:
            return np.array([it.target for it in items], dtype=np.int64)
        return np.array([it.target[0] for it in items], dtype=np.int64)

    def add_companions(self, companions: Sequence[Companion]) -> None:
        """Fixed members served beside the tuned encoder; validation scores the average of all."""
        self.companions = list(companions)
        self._companion_probs.clear()

    def fit_class_weights(self, items: Sequence[EncoderItem]) -> None:
        """Inverse-frequency weights (mean 1) for single-label; positive-class weights for multi-label."""
        if not self.class_weights:
            return
        n = len(items)
        if self.task.multi_label:
            positives = torch.tensor([sum(it.target[j] for it in items) for j in range(len(self.labels))])
            self._weights = ((n - positives) / positives.clamp(min=1)).clamp(max=100.0).float()
        else:
            counts = Counter(it.target[0] for it in items)
            raw = torch.tensor([n / max(counts.get(j, 0), 1) for j in range(len(self.labels))], dtype=torch.float32)
            self._weights = raw / raw.mean()
        self._weights = self._weights.to(self.device)

    # --- loop.Learner ------------------------------------------------------------------------------------------

    def parameter_groups(self) -> list[ParameterGroup]:
        # One rate for all: the head starts from the probe, already in place, so it needs no faster rate of its own.
        body = [p for p in self.model.parameters() if p.requires_grad]
        return [ParameterGroup(body + list(self.head.parameters()))]

    def targets(self, item: EncoderItem) -> int:
        return 1

    def tokens(self, item: EncoderItem) -> int:
        return len(item.input_ids)

    def set_training(self, training: bool) -> None:
        self.model.train(training)
        self.head.train(training)

    def _logits(self, items: Sequence[EncoderItem]) -> torch.Tensor:
        width = max(len(it.input_ids) for it in items)
        with attention_for_width(self.model, width, compiled=self.compiled_layers):
            pooled = self.features.pooled([it.input_ids for it in items])
        logits: torch.Tensor = self.head(pooled)
        return logits.float()

    def loss(self, items: Sequence[EncoderItem]) -> BatchLoss:
        return self._loss(self._logits(items), items)

    def _loss(self, logits: torch.Tensor, items: Sequence[EncoderItem]) -> BatchLoss:
        target = torch.tensor([it.target for it in items], device=self.device)
        if self.task.multi_label:
            per_label = F.binary_cross_entropy_with_logits(
                logits, target.float(), pos_weight=self._weights, reduction="none"
            )
            loss_sum = per_label.mean(-1).sum()
            decided = (torch.sigmoid(logits.detach()) > torch.tensor(self.thresholds, device=self.device)).long()
            correct = int((decided == target).all(-1).sum())
        else:
            gold = target[:, 0]
            loss_sum = F.cross_entropy(logits, gold, weight=self._weights, reduction="sum", ignore_index=-1)
            correct = int((logits.detach().argmax(-1) == gold).sum())
        return BatchLoss(loss_sum=loss_sum, n_targets=len(items), n_correct=correct)

    def evaluate(self, items: Sequence[EncoderItem], classify: bool) -> Evaluation:
        self.set_training(False)
        # In order of length, so each chunk pads little (the metrics do not depend on the order); one forward pass
        # gives a chunk's loss and its logits both.
        items = sorted(items, key=self.tokens)
        loss, chunks = 0.0, []
        with torch.inference_mode():
            for start in range(0, len(items), 64):
                part = items[start : start + 64]
                chunks.append(self._logits(part))
                loss += float(self._loss(chunks[-1], part).loss_sum)
        probs = self._served_probabilities(torch.cat(chunks).cpu().numpy(), items)
        if self.task.multi_label and classify:
            self.thresholds = tune_thresholds(torch.from_numpy(probs), [it.target for it in items])
        accuracy, metrics = self._metrics(probs, items)
        return Evaluation(loss=loss / max(len(items), 1), token_accuracy=accuracy, classification=metrics)

    def probabilities(self, items: Sequence[EncoderItem]) -> np.ndarray:
        """What the checkpoint would answer for each item, in the items' order (items x labels)."""
        self.set_training(False)
        order = sorted(range(len(items)), key=lambda i: self.tokens(items[i]))
        logits = np.zeros((len(items), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                part = order[start : start + 64]
                logits[part] = self._logits([items[i] for i in part]).cpu().numpy()
        return self._served_probabilities(logits, items)

    def _served_probabilities(self, logits: np.ndarray, items: Sequence[EncoderItem]) -> np.ndarray:
        """What the checkpoint answers with: the tuned head's probabilities, averaged with the companions'."""
        from localft.classifier.head import probabilities

        probs = probabilities(logits, self.task.multi_label)
        if not self.companions:
            return probs
        missing = [it.text for it in items if it.text not in self._companion_probs]
        if missing:
            fixed = sum(c.member.weight * c.head.probabilities(c.features.embed(missing)) for c in self.companions)
            self._companion_probs.update(zip(missing, np.asarray(fixed), strict=True))
        total = 1.0 + sum(c.member.weight for c in self.companions)
        return np.asarray((probs + np.stack([self._companion_probs[it.text] for it in items])) / total)

    def _metrics(self, probs: np.ndarray, items: Sequence[EncoderItem]) -> tuple[float, dict[str, float]]:
        if self.task.multi_label:
            decided = (probs > np.asarray(self.thresholds)).tolist()
            pred = [[lab for lab, on in zip(self.labels, row, strict=True) if on] for row in decided]
            gold = [[lab for lab, on in zip(self.labels, it.target, strict=True) if on] for it in items]
            multi = multilabel_metrics(gold, pred, self.labels)
            return multi.exact_match, {
                "exact_match": multi.exact_match,
                "micro_f1": multi.micro_f1,
                "macro_f1": multi.macro_f1,
            }
        known = [i for i, it in enumerate(items) if it.target[0] >= 0]  # answers outside the training labels
        if not known:
            return 0.0, {}
        pred_idx = probs.argmax(-1).tolist()
        single = classification_metrics(
            [self.labels[items[i].target[0]] for i in known], [self.labels[pred_idx[i]] for i in known], self.labels
        )
        return single.accuracy, {
            "accuracy": single.accuracy,
            "macro_f1": single.macro_f1,
            "weighted_f1": single.weighted_f1,
        }

    def members(self) -> list[Member]:
        """The checkpoint's members: the tuned encoder, then the companions."""
        tuned = Member("encoder", MEMBER, base_model=self.base_model, tuned=True, max_length=self.max_length)
        return [tuned, *(c.member for c in self.companions)]

    def save(self, folder: Path) -> None:
        head = LinearHead(
            self.head.weight.detach().cpu().float().numpy(),
            self.head.bias.detach().cpu().float().numpy(),
            self.task.multi_label,
        )
        save_member(folder, self.members()[0], head, self.features)
        for companion in self.companions:
            save_member(folder, companion.member, companion.head, companion.features)

    def load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        where = folder / MEMBER
        self.model.load_state_dict(load_file(where / ENCODER_FOLDER / "model.safetensors", device=self.device))
        head = LinearHead.load(where)
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(head.weight))
            self.head.bias.copy_(torch.from_numpy(head.bias))


def tune_thresholds(probs: torch.Tensor, targets: Sequence[tuple[int, ...]]) -> list[float]:
    """Per label, the threshold in `THRESHOLD_GRID` with the best F1 on validation, or 0.5 where that is not
    clearly better than answering the label for every example (then the model has not learned the label)."""
    gold = torch.tensor(list(targets), dtype=torch.bool)
    best: list[float] = []
    for j in range(probs.shape[1]):
        positives = float(gold[:, j].sum())
        if positives == 0:
            best.append(0.5)
            continue
        f1s = []
        for t in THRESHOLD_GRID:
            on = probs[:, j] > t
            tp = float((on & gold[:, j]).sum())
            f1s.append(2 * tp / max(float(on.sum()) + positives, 1e-9))
        pick = max(range(len(f1s)), key=lambda i: (f1s[i], -abs(THRESHOLD_GRID[i] - 0.5)))
        # A rare label the model cannot rank still gets its best F1 from a threshold low enough to switch it on
        # everywhere: on Jigsaw (400 examples) every comment came out `threat`. Such a threshold must beat the
        # F1 of "always on" by a margin to be kept.
        always_on = 2 * positives / (len(gold) + positives)
        best.append(THRESHOLD_GRID[pick] if f1s[pick] >= always_on + MIN_F1_GAIN else 0.5)
    return best
