"""Fine-tuning an encoder (MiniLM, MPNet, any BERT-like folder) with a classification head.

The input is the text of the user messages (`base_models.templates.encoder_text`, as inference reads a request);
the labels come from the assistant answers. Single-label tasks use softmax and cross-entropy, multi-label tasks a
sigmoid per label with binary cross-entropy and a per-label decision threshold, tuned on the validation set when
there is one (else 0.5). Class weights (inverse frequency) counter imbalance when asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from localft.base_models.templates import encoder_text
from localft.devices import to_device
from localft.eval.metrics import classification_metrics, multilabel_metrics
from localft.training.auto import BASE_LEARNING_RATE
from localft.training.dataset import ChatExample
from localft.training.kernels import attention_for_width, use_fast_dropout
from localft.training.loop import BatchLoss, Evaluation, ParameterGroup, autocast
from localft.training.task import TaskInfo

THRESHOLD_GRID = [i / 20 for i in range(1, 20)]
"""Candidate multi-label thresholds, 0.05 to 0.95."""
MIN_F1_GAIN = 0.1
"""How much better than labelling every example positive a tuned threshold's validation F1 must be."""
ATTENTION_DROPOUT: float | None = 0.0
"""Dropout on the attention weights while fine-tuning, in place of the model's own (0.1 for MiniLM and MPNet), or
None to keep the model's. 0 by measurement: steps 1.08-1.25x faster for MiniLM and no accuracy lost on five datasets
(BENCHMARKS.md, "Defaults and why")."""
ATTENTION_DROPOUT_FIELDS = ("attention_probs_dropout_prob", "attention_dropout")
"""Where BERT-like configs (BERT, RoBERTa, MPNet, DeBERTa; DistilBERT, ModernBERT) keep their attention dropout."""
HIDDEN_DROPOUT: float | None = 0.0
"""Dropout on the hidden states (after the embeddings, each attention output and feed-forward block, and before the
classifier where the config sets no dropout of its own), in place of the model's own (0.1 for MiniLM and MPNet), or
None to keep the model's. 0 by measurement: in a paired study on five datasets, three seeds each, MiniLM without it
scored 6.7 points higher on emotion and on banking77 (every pair higher) and the same on the other three, and its
steps ran 1.02-1.13x faster (BENCHMARKS.md, "Defaults and why")."""
HIDDEN_DROPOUT_FIELDS = ("hidden_dropout_prob", "dropout")
"""Where BERT-like configs (BERT, RoBERTa, MPNet, DeBERTa; DistilBERT) keep their hidden-state dropout."""
TRAIN_WORD_EMBEDDINGS = True
"""Whether fine-tuning updates the word embedding matrix (MiniLM: 11.7M of its 22.7M weights) or leaves it frozen.
Frozen, MiniLM's steps ran 1.15x faster, but scores fell on four of five datasets, by up to half a point on average
(banking77, Jigsaw): trained by measurement (BENCHMARKS.md, "Defaults and why")."""
NEW_HEAD_LR_SCALE = 30.0
"""The least learning rate of the weights the base model does not have (its new classification head), as a multiple
of the encoders' base rate (`auto.BASE_LEARNING_RATE`: 30 x 1e-4 = 3e-3), for tasks with at least `MANY_LABELS`
labels; the head learns at the job's rate where that is higher. With many labels, a head that starts from random
weights at the encoder's careful 1e-4 is what holds a run back: in paired runs (BENCHMARKS.md, "Defaults and why")
30x raised banking77 (77 intents) by 11 points and CLINC150 (150) by 7, while on sets of 2 to 6 labels it was level or
cost up to 2 points. It does not scale with the user's `learning_rate_multiplier`: on banking77 at multiplier 0.3,
a head at 3e-3 scored 19 points above one scaled down with the rest, and at multiplier 3 it was level with one
scaled up."""
MANY_LABELS = 20
"""Labels from which the new head gets its own rate. Measured were 2-7 labels and 77-150; 20 lies between."""


@dataclass(frozen=True)
class EncoderItem:
    """One example: token ids and its gold label index (single-label) or label indicator row (multi-label)."""

    input_ids: list[int]
    target: tuple[int, ...]


class EncoderLearner:
    """An encoder with a sequence-classification head; implements `loop.Learner`."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: Any,
        task: TaskInfo,
        device: str,
        max_length: int,
        class_weights: bool = False,
    ) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification

        self.tokenizer = tokenizer
        self.task = task
        self.device = device
        self.max_length = max_length
        self.compiled_layers = False
        """Set once `training.compilation` compiled the model's layers: training passes pick attention for them."""
        self.labels = list(task.labels)
        self.thresholds = [0.5] * len(self.labels) if task.multi_label else []
        config = AutoConfig.from_pretrained(
            model_dir,
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={label: i for i, label in enumerate(self.labels)},
            problem_type="multi_label_classification" if task.multi_label else "single_label_classification",
        )
        for fields, chosen in ((ATTENTION_DROPOUT_FIELDS, ATTENTION_DROPOUT), (HIDDEN_DROPOUT_FIELDS, HIDDEN_DROPOUT)):
            for field in fields if chosen is not None else ():
                if isinstance(getattr(config, field, None), (int, float)):
                    setattr(config, field, chosen)
        self.model: Any
        self.model, loading = AutoModelForSequenceClassification.from_pretrained(
            model_dir, config=config, dtype=torch.float32, output_loading_info=True
        )
        self.model.to(device)
        self.new_parameters = set(loading["missing_keys"])
        """Names of the parameters the base model lacked (initialised at random): the classification head, unless
        the base model already was a classifier with these labels."""
        if not TRAIN_WORD_EMBEDDINGS:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        use_fast_dropout(self.model)
        first_token_only(self.model)
        self.class_weights = class_weights
        self._weights: torch.Tensor | None = None
        self._pad_id = tokenizer.pad_token_id or 0

    def make_items(self, examples: Sequence[ChatExample]) -> list[EncoderItem]:
        if not examples:  # no validation file: the tokenizer rejects an empty batch
            return []
        texts = [encoder_text(ex.context) for ex in examples]
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return [EncoderItem(list(i), self._target(ex.answer)) for i, ex in zip(ids, examples, strict=True)]

    def _target(self, answer: str) -> tuple[int, ...]:
        if self.task.multi_label:
            named = set(self.task.label_set(answer))
            return tuple(int(label in named) for label in self.labels)
        label = self.task.label_of(answer).strip()
        return (self.labels.index(label) if label in self.labels else -1,)

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
        pretrained: list[torch.nn.Parameter] = []
        new: list[torch.nn.Parameter] = []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                (new if name in self.new_parameters else pretrained).append(parameter)
        if len(self.labels) < MANY_LABELS or not new:
            return [ParameterGroup(pretrained + new)]
        head_rate = NEW_HEAD_LR_SCALE * BASE_LEARNING_RATE["encoder"]
        return [ParameterGroup(pretrained), ParameterGroup(new, head_rate, "the new classification head")]

    def targets(self, item: EncoderItem) -> int:
        return 1

    def tokens(self, item: EncoderItem) -> int:
        return len(item.input_ids)

    def set_training(self, training: bool) -> None:
        self.model.train(training)

    def _logits(self, items: Sequence[EncoderItem]) -> torch.Tensor:
        width = max(len(it.input_ids) for it in items)
        ids = torch.full((len(items), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for r, it in enumerate(items):
            ids[r, : len(it.input_ids)] = torch.tensor(it.input_ids)
            mask[r, : len(it.input_ids)] = 1
        with autocast(self.device), attention_for_width(self.model, width, compiled=self.compiled_layers):
            logits: torch.Tensor = self.model(
                input_ids=to_device(ids, self.device), attention_mask=to_device(mask, self.device)
            ).logits
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
        # Thresholds and metrics are computed where the gold labels are, on the CPU: a model on a GPU hands over its
        # logits once here, rather than every comparison meeting a CPU tensor (a device error at the first epoch end).
        logits = torch.cat(chunks).cpu()
        if self.task.multi_label and classify:
            self.thresholds = tune_thresholds(torch.sigmoid(logits), [it.target for it in items])
        accuracy, metrics = self._metrics(logits, items)
        return Evaluation(loss=loss / max(len(items), 1), token_accuracy=accuracy, classification=metrics)

    def _metrics(self, logits: torch.Tensor, items: Sequence[EncoderItem]) -> tuple[float, dict[str, float]]:
        if self.task.multi_label:
            decided = (torch.sigmoid(logits) > torch.tensor(self.thresholds)).tolist()
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
        pred_idx = logits.argmax(-1).tolist()
        single = classification_metrics(
            [self.labels[items[i].target[0]] for i in known], [self.labels[pred_idx[i]] for i in known], self.labels
        )
        return single.accuracy, {
            "accuracy": single.accuracy,
            "macro_f1": single.macro_f1,
            "weighted_f1": single.weighted_f1,
        }

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder / "model")
        self.tokenizer.save_pretrained(folder / "tokenizer")

    def load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        self.model.load_state_dict(load_file(folder / "model" / "model.safetensors", device=self.device))


def first_token_only(model: Any) -> bool:
    """Make a BERT sequence classifier's last layer compute its output at the first token only.

    The classifier reads the last layer at `[CLS]` alone (the pooler takes position 0). That layer still needs keys
    and values of every token, but its query, attention output and feed-forward block only at position 0: for
    MiniLM's 6 layers at 64 tokens, that skips about 13% of the FLOPs of a step's matrix multiplies. Returns whether
    the model is of that shape (other architectures keep their own forward)."""
    from transformers.models.bert.modeling_bert import BertForSequenceClassification, BertLayer

    if type(model) is not BertForSequenceClassification or model.bert.pooler is None:
        return False
    last = model.bert.encoder.layer[-1]
    if type(last) is not BertLayer or last.attention.is_cross_attention or last.is_decoder:
        return False
    last.forward = _FirstTokenLayer(last)
    return True


class _FirstTokenLayer:
    """`BertLayer.forward` with queries, attention output and feed-forward at position 0 only."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer

    def __call__(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: Any, **kwargs: Any
    ) -> Any:  # the rest (cross-attention, cache) serves decoders, which `first_token_only` leaves alone
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.bert.modeling_bert import eager_attention_forward

        attention = self.layer.attention.self
        batch, length, _ = hidden_states.shape
        first = hidden_states[:, :1]

        def heads(x: torch.Tensor, n: int) -> torch.Tensor:
            return x.view(batch, n, -1, attention.attention_head_size).transpose(1, 2)

        query = heads(attention.query(first), 1)
        key, value = heads(attention.key(hidden_states), length), heads(attention.value(hidden_states), length)
        if attention_mask is not None and attention_mask.dim() == 4:
            attention_mask = attention_mask[:, :, :1]  # the query row of position 0
        attend = ALL_ATTENTION_FUNCTIONS.get_interface(attention.config._attn_implementation, eager_attention_forward)
        context, _ = attend(
            attention,
            query,
            key,
            value,
            attention_mask,
            dropout=attention.dropout.p if attention.training else 0.0,
            scaling=attention.scaling,
        )
        attended = self.layer.attention.output(context.reshape(batch, 1, -1), first)
        return self.layer.feed_forward_chunk(attended)


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
