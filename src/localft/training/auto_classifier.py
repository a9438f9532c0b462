"""A job whose model is `auto`: the classifier chosen for its training file (`training.selection`), fitted on the
whole file and written as one checkpoint.

A choice of frozen members only (TF-IDF, frozen encoders with their heads) is fitted in seconds and written at once;
a tuned encoder trains through the training loop from its chosen head (any frozen members of its choice beside it
as companions, which validation and the checkpoint include). A resumed job reads its choice back instead of
choosing again.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from localft.base_models import DEFAULT_BASE_MODEL, local_model_dir, resolve_device
from localft.base_models.prompt_shape import PromptShape
from localft.classifier.crossval import log_loss
from localft.classifier.features import TfidfFeatures
from localft.classifier.head import PROBE_C, build_head, fit_head, label_words
from localft.classifier.model import Member, load_encoder_features, save_member
from localft.settings import Settings
from localft.training.auto import MAX_LENGTH
from localft.training.checkpoint import CheckpointMeta, commit, partial_dir, write_meta
from localft.training.dataset import ChatExample, read_examples
from localft.training.encoder_head import Companion
from localft.training.interfaces import CheckpointInfo, EventSink, StepMetrics, TrainResult, TrainSpec
from localft.training.selection import DECISION_FILE, Candidate, Decision, Selector, targets_of
from localft.training.task import TaskInfo, detect_task


def run_auto(spec: TrainSpec, sink: EventSink) -> TrainResult:
    """Train what `auto` picks for the training file (see the module's docstring)."""
    from localft.training.run import run_training

    train = read_examples(spec.training_file)
    task = detect_task([ex.answer for ex in train], spec.task)
    if task.task != "classification":
        sink.log(f"auto: the answers are free text, not labels: fine-tuning {DEFAULT_BASE_MODEL}")
        return run_training(replace(spec, base_model=DEFAULT_BASE_MODEL), sink)
    shape = PromptShape.learn([ex.context for ex in train])
    texts = [shape.payload(ex.context) for ex in train]
    saved = spec.output_dir / DECISION_FILE
    if spec.resume_from is not None and saved.is_file():
        decision = Decision.from_dict(json.loads(saved.read_text()))
        sink.log(f"auto: resuming the chosen classifier, {' + '.join(c.name for c in decision.chosen)}")
    else:
        decision = Selector(train, texts, task, spec, sink).run()
        spec.output_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(decision.to_dict(), indent=2))
    return fit_chosen(spec, sink, train, texts, task, shape, decision)


def fit_chosen(
    spec: TrainSpec,
    sink: EventSink,
    train: list[ChatExample],
    texts: list[str],
    task: TaskInfo,
    shape: PromptShape,
    decision: Decision,
) -> TrainResult:
    from localft.training.run import Additions, run_training

    device = resolve_device(spec.device)
    cache_dir = spec.cache_dir or Settings.from_env().cache_dir
    targets = targets_of(train, task)
    if decision.chosen[0].kind == "lora":
        sink.log(f"auto: fine-tuning {decision.chosen[0].base_model} with LoRA")
        result = run_training(replace(spec, base_model=decision.chosen[0].base_model), sink)
        return replace(result, hyperparameters={**result.hyperparameters, "classifier": decision.chosen[0].name})
    tuned = [c for c in decision.chosen if c.kind == "tuned"]
    fixed = [c for c in decision.chosen if c.kind != "tuned"]
    first = 1 if tuned else 0
    companions = [
        fit_fixed(candidate, f"member-{first + i}", texts, targets, task, device, cache_dir)
        for i, candidate in enumerate(fixed)
    ]
    names = " + ".join(c.name for c in decision.chosen)
    selection = {**decision.to_dict(), "classifier": names}
    if tuned:
        beside = f", served with {' + '.join(c.member.name for c in companions)}" if companions else ""
        sink.log(f"auto: fine-tuning {tuned[0].base_model} from its chosen head{beside}")
        additions = Additions(companions, decision.thresholds, selection, tuned[0].head)
        result = run_training(replace(spec, base_model=tuned[0].base_model), sink, additions)
        return replace(result, hyperparameters={**result.hyperparameters, "classifier": names})
    return write_fixed(spec, sink, task, shape, companions, decision, selection, len(train))


def fit_fixed(
    candidate: Candidate,
    folder: str,
    texts: list[str],
    targets: np.ndarray,
    task: TaskInfo,
    device: str,
    cache_dir: Path,
) -> Companion:
    n_labels = len(task.labels)
    if candidate.kind == "tfidf":
        tfidf = TfidfFeatures.fit(texts)
        head = fit_head(tfidf.embed(texts), targets, n_labels, task.multi_label, PROBE_C)
        return Companion(Member("tfidf", folder), tfidf, head)
    max_length = MAX_LENGTH["encoder"]
    features = load_encoder_features(local_model_dir(candidate.base_model, cache_dir), device, max_length)
    names = features.embed([label_words(label) for label in task.labels])
    head = build_head(candidate.head, features.embed(texts), targets, n_labels, task.multi_label, PROBE_C, names)
    member = Member("encoder", folder, base_model=candidate.base_model, max_length=max_length)
    return Companion(member, features, head)


def write_fixed(
    spec: TrainSpec,
    sink: EventSink,
    task: TaskInfo,
    shape: PromptShape,
    companions: list[Companion],
    decision: Decision,
    selection: dict[str, Any],
    n_examples: int,
) -> TrainResult:
    """A classifier of frozen members only: one checkpoint, written at once (no training loop)."""
    metrics = validation_metrics(spec, shape, task, companions, decision.thresholds)
    step_metrics = StepMetrics(step=1, total_steps=1, train_loss=0.0, train_mean_token_accuracy=0.0, **metrics)
    sink.log_metrics(step_metrics)
    hyperparameters = {
        "n_epochs": 1,
        "batch_size": n_examples,
        "learning_rate_multiplier": 1.0,
        "classifier": selection["classifier"],
    }
    meta = CheckpointMeta(
        base_model="auto",
        family="classifier",
        task="classification",
        step=1,
        epoch=1,
        labels=list(task.labels),
        multi_label=task.multi_label,
        label_separator=task.label_separator,
        none_label=task.none_label,
        assistant_prefix=task.assistant_prefix,
        thresholds=list(decision.thresholds),
        max_length=MAX_LENGTH["encoder"],
        hyperparameters={**hyperparameters, "seed": spec.seed},
        metrics=step_metrics.as_event_data(),
        members=[c.member.to_dict() for c in companions],
        prompt_shape=shape.to_dict(),
        selection=selection,
    )
    final = spec.output_dir / "step-000001"
    folder = partial_dir(final)
    for companion in companions:
        save_member(folder, companion.member, companion.head, companion.features)
    write_meta(folder, meta)
    commit(folder, final)
    sink.on_checkpoint(CheckpointInfo(step=1, epoch=1, path=final, metrics=step_metrics))
    sink.log(f"Training finished: {selection['classifier']} fitted on {n_examples} examples")
    return TrainResult(final, trained_tokens=0, steps=1, hyperparameters=hyperparameters, metrics=step_metrics)


def validation_metrics(
    spec: TrainSpec, shape: PromptShape, task: TaskInfo, companions: list[Companion], thresholds: list[float]
) -> dict[str, Any]:
    """The classification metrics of the validation file, where there is one (as training reports at epoch ends)."""
    from localft.eval.metrics import classification_metrics, multilabel_metrics

    if spec.validation_file is None:
        return {}
    valid = read_examples(spec.validation_file)
    texts = [shape.payload(ex.context) for ex in valid]
    total = sum(c.member.weight for c in companions)
    probs = np.asarray(sum(c.member.weight * c.head.probabilities(c.features.embed(texts)) for c in companions))
    probs = probs / total
    labels = task.labels
    targets = targets_of(valid, task)
    loss = log_loss(probs, targets, task.multi_label)
    if task.multi_label:
        decided = probs > np.asarray(thresholds or [0.5] * len(labels))
        pred = [[label for label, on in zip(labels, row, strict=True) if on] for row in decided]
        multi = multilabel_metrics([task.label_set(ex.answer) for ex in valid], pred, labels)
        values = {"exact_match": multi.exact_match, "micro_f1": multi.micro_f1, "macro_f1": multi.macro_f1}
        accuracy = multi.exact_match
    else:
        gold = [task.label_of(ex.answer).strip() for ex in valid]
        single = classification_metrics(gold, [labels[i] for i in probs.argmax(1)], labels)
        values = {"accuracy": single.accuracy, "macro_f1": single.macro_f1, "weighted_f1": single.weighted_f1}
        accuracy = single.accuracy
    return {"full_valid_loss": loss, "full_valid_mean_token_accuracy": accuracy, "classification": values}
