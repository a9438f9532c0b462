"""`model: "auto"`: the classifier for the data, chosen by its scores on the training data alone.

The candidates, cheapest first, each scored by K-fold cross-validation on the training file:
- `tfidf`: word TF-IDF + logistic regression;
- `<encoder> frozen`: each installed sentence encoder's mean-pooled embeddings + logistic regression (the strongest
  simple few-shot method), its head nudged toward the embeddings of the label names where that scores better;
- `<llm> lora`: the default LLM with LoRA (single-label data), where all its folds fit the compute budget. The
  budget is counted in passes of the smallest encoder over the training texts (a fold costs its epochs' passes,
  forward and backward, in the model's size), so the same data gets the same candidates on a fast machine or a
  busy one.
Any ensemble, the mean of its members' probabilities, is scored from the same out-of-fold predictions at no cost.
The best score wins, the cheaper on a tie. Then the best encoder of the choice is fine-tuned from its chosen head
(`<encoder> tuned`: the encoder recipe of `training.encoder_head`, LP-FT), which is not cross-validated itself
(`Selector._tuned_in_place` says why). `training.auto_classifier` fits the choice on the whole training file; the
table of candidates goes to the job's events and into the checkpoint (`selection`).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from localft.base_models import (
    DEFAULT_BASE_MODEL,
    get_spec,
    is_installed,
    list_base_models,
    local_model_dir,
    resolve_device,
)
from localft.base_models.templates import content_text
from localft.classifier.crossval import FoldProbs, make_folds, out_of_fold
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import HEAD_RECIPES, PROBE_C, HeadRecipe, build_head, fit_head, label_words
from localft.classifier.model import load_encoder_features
from localft.errors import TrainingCancelled
from localft.settings import Settings
from localft.training.auto import MAX_LENGTH, Family, resolve
from localft.training.dataset import ChatExample
from localft.training.encoder_head import tune_thresholds
from localft.training.interfaces import CheckpointInfo, EventLevel, EventSink, StepMetrics, TrainSpec
from localft.training.lora_causal import CausalLearner
from localft.training.task import TaskInfo

Kind = Literal["tfidf", "frozen", "tuned", "lora"]
BUDGET_PASSES = 150.0
"""Selection's compute budget, in passes of the smallest encoder over the training texts."""
TUNING_BUDGET_PASSES = 300.0
"""What fine-tuning the chosen encoder may cost, in the same passes."""
TRAINING_PASS_COST = 4.0
"""A training pass over a text costs about this many inference passes (forward, backward and the update)."""
MIN_GAIN = 0.002
"""An ensemble must score at least this much above its best member to be chosen over it."""
MAX_MEMBERS = 3
DECISION_FILE = "selection.json"
"""Where a run keeps its choice (in the output folder), so a resumed job trains what it chose."""


@dataclass(frozen=True)
class Candidate:
    """One way to build the classifier."""

    kind: Kind
    base_model: str = ""
    head: HeadRecipe = field(default_factory=HeadRecipe)
    """How the encoder's head is made (frozen) or starts (tuned): chosen per encoder by cross-validation."""

    @property
    def name(self) -> str:
        return "tfidf" if self.kind == "tfidf" else f"{self.base_model} {self.kind}"


@dataclass
class Score:
    """A candidate's (or an ensemble's) cross-validated score."""

    members: tuple[str, ...]
    score: float
    folds: int
    seconds: float
    """What scoring it cost (for an ensemble: nothing beyond its members)."""

    @property
    def name(self) -> str:
        return " + ".join(self.members)


@dataclass
class Decision:
    """The choice, as kept with the run and shown in the checkpoint's `selection`."""

    chosen: list[Candidate]
    table: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "accuracy"
    thresholds: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": [asdict(c) for c in self.chosen],
            "table": self.table,
            "metric": self.metric,
            "thresholds": self.thresholds,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Decision:
        return cls(
            chosen=[Candidate(**{**c, "head": HeadRecipe(**c.get("head", {}))}) for c in raw["chosen"]],
            table=raw.get("table", []),
            metric=raw.get("metric", "accuracy"),
            thresholds=raw.get("thresholds", []),
        )


class Selector:
    """Scores the candidates by cross-validation on the training texts."""

    def __init__(self, train: list[ChatExample], texts: list[str], task: TaskInfo, spec: TrainSpec, sink: EventSink):
        self.train = train
        self.texts = texts
        self.task = task
        self.spec = spec
        self.sink = sink
        self.device = resolve_device(spec.device)
        self.cache_dir = spec.cache_dir or Settings.from_env().cache_dir
        self.targets = targets_of(train, task)
        self.folds = make_folds(self.targets, task.multi_label, spec.seed)
        self.encoders = installed_encoders()
        self.sizes = {base: encoder_size(local_model_dir(base, self.cache_dir)) for base in self.encoders}
        self.sizes = self.sizes or {"": 1}
        self.metric = "micro_f1" if task.multi_label else "accuracy"

    def run(self) -> Decision:
        started = time.monotonic()
        n = len(self.train)
        self.sink.log(
            f"auto: scoring classifiers by {len(self.folds)}-fold cross-validation on the {n} training examples "
            f"({self.metric}), within {BUDGET_PASSES:.0f} passes of the smallest encoder over the texts"
        )
        oof: dict[str, np.ndarray] = {}
        runs: dict[str, tuple[int, float]] = {}  # candidate -> (folds, seconds)
        candidates: dict[str, Candidate] = {}
        spent = 0.0  # of the budget, in passes of the smallest encoder
        everyone = np.ones(n, bool)

        def record(candidate: Candidate, probs: np.ndarray, seconds: float) -> None:
            candidates[candidate.name] = candidate
            oof[candidate.name] = probs
            runs[candidate.name] = (len(self.folds), seconds)
            self._check_stop()

        t0 = time.monotonic()
        tfidf = self._cross_validate(lambda tr, te: _tfidf_probs(self.texts, self.targets, tr, te, self.task))
        record(Candidate("tfidf"), tfidf, time.monotonic() - t0)
        for base in self.encoders:
            t0 = time.monotonic()
            features = load_encoder_features(local_model_dir(base, self.cache_dir), self.device, MAX_LENGTH["encoder"])
            x = features.embed(self.texts)
            spent += self._relative_size(local_model_dir(base, self.cache_dir))
            names = features.embed([label_words(label) for label in self.task.labels])
            options = [(recipe, self._frozen_oof(x, names, recipe)) for recipe in HEAD_RECIPES]
            recipe, probs = max(options, key=lambda o: self._score(o[1], everyone))  # the first of equals: no prior
            frozen = Candidate("frozen", base, recipe)
            record(frozen, probs, time.monotonic() - t0)
        # Tuned encoders are not scored here (see `_tuned_in_place`). The LLM is scored on every fold or none, so
        # that all candidates are compared on the same examples.
        llm = Candidate("lora", DEFAULT_BASE_MODEL)
        if not self.task.multi_label and is_installed_name(DEFAULT_BASE_MODEL):
            passes = self._fold_passes(llm) * len(self.folds)
            if spent + passes > BUDGET_PASSES:
                self.sink.log(f"auto: {llm.name} is over the compute budget ({passes:.0f} passes)")
            else:
                t0 = time.monotonic()
                record(llm, self._cross_validate(partial(self._fold_probs, llm)), time.monotonic() - t0)
        scores = [Score((name,), self._score(oof[name], everyone), *runs[name]) for name in oof]
        scores += self._ensembles(scores, oof, everyone)
        best = max(scores, key=lambda s: (round(s.score, 6), -s.seconds))
        table = [
            {"classifier": s.name, "score": round(s.score, 4), "folds": s.folds, "seconds": round(s.seconds, 1)}
            for s in sorted(scores, key=lambda s: -s.score)
        ]
        self._log_table(table, best, n, time.monotonic() - started)
        alone = {s.members[0]: s.score for s in scores if len(s.members) == 1}
        chosen = self._tuned_in_place([candidates[m] for m in sorted(best.members, key=lambda m: -alone[m])])
        thresholds: list[float] = []
        if self.task.multi_label:
            # A tuned encoder starts from its frozen self: the nearest predictions that were scored.
            scored = [Candidate("frozen", c.base_model, c.head) if c.kind == "tuned" else c for c in chosen]
            mean = np.mean([oof[c.name] for c in scored], axis=0)
            thresholds = tune_thresholds(_tensor(mean), [tuple(t) for t in self.targets])
        return Decision(chosen, table, self.metric, thresholds)

    def _tuned_in_place(self, chosen: list[Candidate]) -> list[Candidate]:
        """The best frozen encoder of the choice (its members come best first), fine-tuned from the same head (LP-FT)
        and served alone, where one run fits `TUNING_BUDGET_PASSES`; else the choice as it is. Fine-tuning from the
        calibrated probe scored above the frozen encoder in every measurement, cross-validated or on test sets, and
        the encoders ranked the same frozen as tuned; cross-validating the tuned versions cost several times the
        whole job and chose the same model, never an ensemble: the members an ensemble adds make up for a frozen
        encoder's errors, which tuning fixes (docs/studies/few-shot-classifiers.md)."""
        if any(c.kind in ("tuned", "lora") for c in chosen):
            return chosen
        for candidate in chosen:
            if candidate.kind != "frozen":
                continue
            tuned = Candidate("tuned", candidate.base_model, candidate.head)
            cost = self._run_passes(tuned, share=1.0)
            if cost > TUNING_BUDGET_PASSES:
                self.sink.log(f"auto: tuning {candidate.base_model} is over the compute budget ({cost:.0f} passes)")
                return chosen
            return [tuned]
        return chosen

    # --- scoring ------------------------------------------------------------------------------------------------

    def _cross_validate(self, probs_for: FoldProbs) -> np.ndarray:
        return out_of_fold(len(self.train), len(self.task.labels), self.folds, probs_for)

    def _score(self, probs: np.ndarray, mask: np.ndarray) -> float:
        """Accuracy, or for multi-label data micro F1 at thresholds tuned on the same predictions."""
        probs, targets = probs[mask], self.targets[mask]
        if not len(probs):
            return 0.0
        if not self.task.multi_label:
            return float((probs.argmax(1) == targets).mean())
        thresholds = np.asarray(tune_thresholds(_tensor(probs), [tuple(t) for t in targets]))
        decided = probs > thresholds
        true_positives = float((decided & (targets == 1)).sum())
        return 2 * true_positives / max(float(decided.sum() + targets.sum()), 1.0)

    def _frozen_oof(self, x: np.ndarray, names: np.ndarray, recipe: HeadRecipe) -> np.ndarray:
        def fold(train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
            n_labels, multi = len(self.task.labels), self.task.multi_label
            head = build_head(recipe, x[train_idx], self.targets[train_idx], n_labels, multi, PROBE_C, names)
            return head.probabilities(x[test_idx])

        return self._cross_validate(fold)

    def _relative_size(self, folder: Path) -> float:
        return encoder_size(folder) / min(self.sizes.values())

    def _fold_passes(self, candidate: Candidate) -> float:
        """A fold's fine-tuning and prediction, in passes of the smallest encoder over all the training texts."""
        return self._run_passes(candidate, share=1 - 1 / len(self.folds))

    def _run_passes(self, candidate: Candidate, share: float) -> float:
        """Fine-tuning on `share` of the training texts and predicting the rest, in passes of the smallest encoder
        over all of them."""
        family: Family = "encoder" if candidate.kind == "tuned" else "causal_lm"
        n_epochs = resolve(self.spec.hyperparameters, family, int(len(self.train) * share)).n_epochs
        size = self._relative_size(local_model_dir(candidate.base_model, self.cache_dir))
        if candidate.kind == "lora":  # the LLM reads the whole conversation, not the text alone
            chars = sum(len(content_text(m)) for ex in self.train for m in ex.messages)
            size *= chars / max(sum(len(t) for t in self.texts), 1)
        return size * (TRAINING_PASS_COST * n_epochs * share + (1 - share))

    def _fold_probs(self, candidate: Candidate, train_idx: np.ndarray, test_idx: np.ndarray) -> np.ndarray:
        """Fine-tune the LLM on one fold's training part (no checkpoints) and predict its held-out part."""
        from localft.training.run import fold_run

        held_out = [self.train[i] for i in test_idx]
        with tempfile.TemporaryDirectory(prefix="localft-fold-") as scratch:
            fold_spec = replace(self.spec, output_dir=Path(scratch), save_every_s=None)
            fold_train = [self.train[i] for i in train_idx]
            learner, loop = fold_run(
                fold_spec, candidate.base_model, fold_train, self.task, candidate.head, _FoldSink(self.sink)
            )
            loop.run()
            assert isinstance(learner, CausalLearner)
            return learner.label_probabilities([ex.context for ex in held_out])

    def _ensembles(self, singles: list[Score], oof: dict[str, np.ndarray], common: np.ndarray) -> list[Score]:
        """Greedy: from the best single candidate, add the member that raises the score most, while it does (an LLM
        serves alone: it joins no ensemble)."""
        current, found = max(singles, key=lambda s: s.score), []
        if current.members[0].endswith(" lora"):
            return []
        while len(current.members) < MAX_MEMBERS:
            options = [
                Score(
                    (*current.members, other.members[0]),
                    self._score(np.mean([oof[m] for m in (*current.members, other.members[0])], axis=0), common),
                    min(current.folds, other.folds),
                    current.seconds + other.seconds,
                )
                for other in singles
                if other.members[0] not in current.members and not other.members[0].endswith(" lora")
            ]
            if not options:
                break
            option = max(options, key=lambda o: o.score)
            if option.score < current.score + MIN_GAIN:
                break
            found.append(option)
            current = option
        return found

    def _log_table(self, table: list[dict[str, Any]], best: Score, examples: int, seconds: float) -> None:
        width = max(len(row["classifier"]) for row in table)
        lines = [f"auto: classifiers scored in {seconds:.0f} s ({self.metric} on {examples} held-out examples):"]
        for row in table:
            lines.append(
                f"  {row['classifier']:<{width}}  {row['score']:.4f}  ({row['folds']} folds, {row['seconds']:.0f} s)"
            )
        lines.append(f"auto: chose {best.name}")
        self.sink.log("\n".join(lines))

    def _check_stop(self) -> None:
        if self.sink.should_stop():
            raise TrainingCancelled("Training stopped while choosing the classifier.")


class _FoldSink:
    """A cross-validation fold trains quietly; a cancel or pause of the job still stops it."""

    def __init__(self, job: EventSink) -> None:
        self.job = job

    def log(self, message: str, level: EventLevel = "info") -> None:
        if level != "info":
            self.job.log(f"auto (cross-validation): {message}", level)

    def log_metrics(self, metrics: StepMetrics) -> None:
        pass

    def on_checkpoint(self, checkpoint: CheckpointInfo) -> None:
        pass

    def should_stop(self) -> bool:
        return self.job.should_stop()


# --- helpers ----------------------------------------------------------------------------------------------------


def is_installed_name(name: str) -> bool:
    spec = get_spec(name)
    return spec is not None and is_installed(spec)


def installed_encoders() -> list[str]:
    """The built-in sentence encoders whose weights are installed, smallest first."""
    return [spec.name for spec in list_base_models() if spec.family == "encoder" and is_installed(spec)]


def encoder_size(folder: Path) -> int:
    """An encoder's multiply-adds per token in its layers (embeddings aside): what a pass over a text costs."""
    config = json.loads((folder / "config.json").read_text())
    hidden = int(config.get("hidden_size", config.get("dim", 768)))
    layers = int(config.get("num_hidden_layers", config.get("n_layers", 12)))
    inner = int(config.get("intermediate_size", config.get("hidden_dim", 4 * hidden)))
    return layers * (4 * hidden * hidden + 2 * hidden * inner)


def targets_of(examples: Sequence[ChatExample], task: TaskInfo) -> np.ndarray:
    """Label indices (single-label; -1 for an answer outside the labels) or a 0/1 matrix (multi-label)."""
    if task.multi_label:
        return np.array(
            [[int(label in task.label_set(ex.answer)) for label in task.labels] for ex in examples], dtype=np.int64
        )
    index = {label: i for i, label in enumerate(task.labels)}
    return np.array([index.get(task.label_of(ex.answer).strip(), -1) for ex in examples], dtype=np.int64)


def _tfidf_probs(
    texts: list[str], targets: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray, task: TaskInfo
) -> np.ndarray:
    tfidf = TfidfFeatures.fit([texts[i] for i in train_idx])
    head = fit_head(
        tfidf.embed([texts[i] for i in train_idx]), targets[train_idx], len(task.labels), task.multi_label, PROBE_C
    )
    return head.probabilities(tfidf.embed([texts[i] for i in test_idx]))


def _tensor(values: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
