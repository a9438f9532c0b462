"""LoRA fine-tuning of a causal LM (peft), with the loss on assistant tokens only.

Speed on CPU comes from two things (measured in shared/reference/models.md and docs/studies/training-speed.md): bf16
autocast, and
computing logits only where the loss needs them. The LM head projects onto the whole vocabulary (49k tokens for
SmolLM2, 262k for Gemma 3), so running it over every position of a prompt whose tokens carry no loss costs more than
the transformer layers; the decoder body runs on the full sequence and the head only on the answer positions.

Classifier validation scores every label with inference's own scorer (`localft.base_models.scoring`): the summed
log-probability of the label's tokens (assistant prefix, label, end of turn) after the prompt, many validation
prompts and all their labels per forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from localft.base_models.scoring import ScoreRow, score_rows
from localft.devices import to_device
from localft.errors import InvalidRequestError
from localft.eval.metrics import classification_metrics, multilabel_metrics
from localft.training.auto import LORA_ALPHA, LORA_RANK
from localft.training.dataset import IGNORE, ChatEncoder, ChatExample, Encoded
from localft.training.hparams import ALL_LINEAR
from localft.training.kernels import attention_for_width
from localft.training.loop import BatchLoss, Evaluation, ParameterGroup, autocast, bf16_available
from localft.training.task import TaskInfo

ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
VALIDATION_TOKENS_PER_PASS = 16 * 512
"""Padded tokens per validation scoring pass: 16 prompts at the default length (the scorer groups the prompts by
length within it, and splits further where the logits would be too large)."""


@dataclass(frozen=True)
class LoraShape:
    """The adapter a run trains: the job's `lora_*` hyperparameters, resolved (`training.auto`)."""

    rank: int = LORA_RANK
    alpha: float = LORA_ALPHA
    dropout: float = 0.0
    target_modules: list[str] | None = None
    """Layer names, or `["all-linear"]`; None: the attention projections where the model names them so."""


def lora_targets(model: Any, asked: list[str] | None) -> list[str]:
    """The layers to adapt: the names asked for, each checked to be a linear layer of `model`, or by default the
    attention projections q/k/v/o where the model has them all, else every linear layer."""
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_linear(module)})
    if asked is None:
        return list(ATTENTION_PROJECTIONS) if set(ATTENTION_PROJECTIONS) <= set(linear) else [ALL_LINEAR]
    if asked == [ALL_LINEAR]:
        return asked
    missing = [name for name in asked if name not in linear]
    if missing:
        raise InvalidRequestError(
            f"lora_target_modules: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a linear layer of "
            f"this model; its linear layers are {', '.join(linear)} (or use {ALL_LINEAR!r}).",
            param="hyperparameters.lora_target_modules",
            code="invalid_hyperparameters",
        )
    return list(asked)


def _is_linear(module: Any) -> bool:
    import transformers.pytorch_utils

    return isinstance(module, torch.nn.Linear | transformers.pytorch_utils.Conv1D)


@dataclass(frozen=True)
class CausalItem:
    """One encoded conversation, with what classification scoring needs."""

    encoded: Encoded
    context: list[dict[str, Any]]
    answer: str


class CausalLearner:
    """A causal LM wrapped with a LoRA adapter; implements `loop.Learner`."""

    def __init__(
        self,
        model_dir: Path,
        tokenizer: Any,
        encoder: ChatEncoder,
        task: TaskInfo,
        device: str,
        lora: LoraShape | None = None,
    ) -> None:
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        self.tokenizer = tokenizer
        self.encoder = encoder
        self.task = task
        self.device = device
        self.compiled_layers = False
        """Set once `training.compilation` compiled the model's layers: training passes pick attention for them."""
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        base.config.use_cache = False
        lora = lora or LoraShape()
        self.lora_targets = lora_targets(base, lora.target_modules)
        """The layers given an adapter, as recorded with the job (`["all-linear"]` or names)."""
        targets: Any = ALL_LINEAR if self.lora_targets == [ALL_LINEAR] else self.lora_targets
        # peft types alpha as an int but only ever divides it by the rank: a float alpha scales as asked.
        alpha: Any = lora.alpha
        config = LoraConfig(r=lora.rank, lora_alpha=alpha, lora_dropout=lora.dropout, target_modules=targets)
        self.model: Any = get_peft_model(base, config).to(device)
        if bf16_available(device):
            # Frozen weights held in bf16, as inference holds them: peak memory for SmolLM2 fell from 2.2 to 1.7 GB
            # (bench_training); speed was unchanged in an A/B here. The trained adapter stays fp32.
            for param in self.model.parameters():
                if not param.requires_grad:
                    param.data = param.data.to(torch.bfloat16)
            skip_adapter_input_casts(self.model)
        causal: Any = self.model.get_base_model()
        self._causal = causal
        self._body = getattr(causal, causal.base_model_prefix)
        self._head = causal.get_output_embeddings()
        self._softcap = getattr(causal.config, "final_logit_softcapping", None)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.candidates = self._candidate_answers()

    def _candidate_answers(self) -> list[str]:
        if self.task.task != "classification":
            return []
        if self.task.multi_label:
            return []  # set by `use_observed_answers`: label sets seen in training
        return [self.task.assistant_prefix + label for label in self.task.labels]

    def use_observed_answers(self, answers: Sequence[str]) -> None:
        """Multi-label candidates: the distinct label-set answers of the training data (each a valid set)."""
        self.candidates = sorted(set(answers))

    def make_items(self, examples: Sequence[ChatExample]) -> list[CausalItem]:
        return [CausalItem(self.encoder.encode(ex.messages), ex.context, ex.answer) for ex in examples]

    # --- loop.Learner ------------------------------------------------------------------------------------------

    def parameter_groups(self) -> list[ParameterGroup]:
        return [ParameterGroup([p for p in self.model.parameters() if p.requires_grad])]

    def targets(self, item: CausalItem) -> int:
        return item.encoded.n_targets

    def tokens(self, item: CausalItem) -> int:
        return len(item.encoded)

    def set_training(self, training: bool) -> None:
        self.model.train(training)

    def loss(self, items: Sequence[CausalItem]) -> BatchLoss:
        width = max(len(it.encoded) for it in items)
        ids = torch.full((len(items), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        rows, cols, gold = [], [], []
        for r, it in enumerate(items):
            n = len(it.encoded)
            ids[r, :n] = torch.tensor(it.encoded.input_ids)
            mask[r, :n] = 1
            for t in range(1, n):  # the hidden state at t-1 predicts token t
                if it.encoded.labels[t] != IGNORE:
                    rows.append(r)
                    cols.append(t - 1)
                    gold.append(it.encoded.labels[t])
        target = torch.tensor(gold, device=self.device)
        with autocast(self.device), attention_for_width(self._causal, width, compiled=self.compiled_layers):
            hidden = self._body(
                input_ids=to_device(ids, self.device), attention_mask=to_device(mask, self.device)
            ).last_hidden_state
            at = to_device(torch.tensor(rows), self.device), to_device(torch.tensor(cols), self.device)
            logits = self._head(hidden[at]).float()
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        correct = int((logits.detach().argmax(-1) == target).sum())
        return BatchLoss(loss_sum=loss_sum, n_targets=len(gold), n_correct=correct)

    def evaluate(self, items: Sequence[CausalItem], classify: bool) -> Evaluation:
        self.set_training(False)
        loss, targets, correct = 0.0, 0, 0
        by_length = sorted(items, key=self.tokens)  # each chunk pads little; the sums do not depend on the order
        with torch.inference_mode():
            for start in range(0, len(by_length), 8):
                out = self.loss(by_length[start : start + 8])
                loss += float(out.loss_sum)
                targets += out.n_targets
                correct += out.n_correct
        metrics = self._classification(items) if classify and self.candidates else {}
        return Evaluation(loss=loss / max(targets, 1), token_accuracy=correct / max(targets, 1), classification=metrics)

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder / "adapter")
        self.tokenizer.save_pretrained(folder / "tokenizer")

    def load(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(self.model, load_file(folder / "adapter" / "adapter_model.safetensors"))

    # --- classification ----------------------------------------------------------------------------------------

    def predict(self, contexts: Sequence[list[dict[str, Any]]]) -> list[str]:
        """For each context, the candidate answer with the highest summed log-probability after its prompt."""
        scores = self._scores(contexts)
        return [self.candidates[max(range(len(s)), key=s.__getitem__)] for s in scores]

    def label_probabilities(self, contexts: Sequence[list[dict[str, Any]]]) -> np.ndarray:
        """contexts x candidates: each candidate answer's probability, normalised over the candidates (what a
        single-label checkpoint answers with; `training.selection` scores the LLM by it)."""
        scores = np.asarray(self._scores(contexts), dtype=np.float64)
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(scores / scores.sum(axis=1, keepdims=True), dtype=np.float32)

    def _scores(self, contexts: Sequence[list[dict[str, Any]]]) -> list[list[float]]:
        rows = []
        for context in contexts:
            prompt, answers = self.encoder.prompt_and_answers(context, self.candidates)
            rows.append(ScoreRow(prompt_ids=prompt, candidates=answers, prompt_tokens=len(prompt)))
        self.set_training(False)
        with torch.inference_mode(), autocast(self.device):
            scores: list[list[float]] = score_rows(
                self.model, rows, self._pad_id, self.device, budget=VALIDATION_TOKENS_PER_PASS
            )
        return scores

    def _classification(self, items: Sequence[CausalItem]) -> dict[str, float]:
        if not self.task.multi_label:  # a validation answer outside the training labels cannot be scored
            items = [it for it in items if self.task.label_of(it.answer).strip() in self.task.labels]
        if not items:
            return {}
        predicted = self.predict([it.context for it in items])
        if self.task.multi_label:
            multi = multilabel_metrics(
                [self.task.label_set(it.answer) for it in items],
                [self.task.label_set(p) for p in predicted],
                self.task.labels,
            )
            return {"exact_match": multi.exact_match, "micro_f1": multi.micro_f1, "macro_f1": multi.macro_f1}
        single = classification_metrics(
            [self.task.label_of(it.answer).strip() for it in items],
            [self.task.label_of(p).strip() for p in predicted],
            self.task.labels,
        )
        return {"accuracy": single.accuracy, "macro_f1": single.macro_f1, "weighted_f1": single.weighted_f1}


def skip_adapter_input_casts(model: Any) -> None:
    """Stop peft from casting each LoRA layer's input to the adapter's dtype (fp32).

    Under bf16 autocast that cast is undone at once (the adapter's matrix multiplies run in bf16 either way), so it
    only copied the hidden states: without it, the loss and gradients are the same and steps ran faster in four
    in-process A/Bs per model, median ratios 1.03-1.16 for SmolLM2 and 1.00-1.05 for Gemma 3
    (docs/studies/training-speed.md). Only
    for models that always run under autocast: outside it, a bf16 input would meet the fp32 adapter weights."""
    for module in model.modules():
        if hasattr(module, "cast_input_dtype_enabled"):
            module.cast_input_dtype_enabled = False
