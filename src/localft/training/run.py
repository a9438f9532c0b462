"""`run_training`: one fine-tuning run from a `TrainSpec`, reporting through an `EventSink`.

Resolves the base model, reads the data, detects the task, picks the family's learner (LoRA on causal LMs, a
classification head on encoders), and hands everything to the shared loop. Nothing here knows about HTTP or the job
store; the worker, the CLI and tests each bring their own sink.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from localft.base_models import (
    AUTO,
    apply_threads,
    local_model_dir,
    model_family,
    model_positions,
    resolve_alias,
    resolve_device,
    reuse_freed_memory,
)
from localft.base_models.prompt_shape import PromptShape
from localft.base_models.templates import TemplateKind, template_kind
from localft.classifier.head import HeadRecipe
from localft.devices import device_type, free_memory, use_fast_matmul
from localft.errors import DataValidationError, ModelError
from localft.settings import Settings
from localft.training.auto import FORWARD_OVERHEAD, TOKENS_PER_FORWARD, Family, Resolved, resolve, within_positions
from localft.training.checkpoint import CheckpointMeta, read_checkpoint
from localft.training.compilation import compile_layers, compiled_before, remember_compiled, should_compile
from localft.training.dataset import ChatEncoder, ChatExample, read_examples
from localft.training.distributed import processes_for, train_data_parallel
from localft.training.encoder_head import Companion, EncoderLearner
from localft.training.interfaces import EventSink, TrainResult, TrainSpec
from localft.training.loop import Learner, Plan, TrainLoop, bf16_available
from localft.training.memory import plan_memory, use_gradient_checkpointing
from localft.training.parallel import Collective, OneProcess
from localft.training.task import TaskInfo, detect_task

MAX_FULL_VALIDATION = 500
"""Validation examples scored at each epoch end (a sample of bigger files: scoring labels costs a forward each)."""


@dataclass(frozen=True)
class Additions:
    """What `auto` (`training.selection`) adds to the run of the encoder it chose."""

    companions: Sequence[Companion] = ()
    """Fixed members served beside the tuned encoder."""
    thresholds: Sequence[float] = ()
    """Multi-label thresholds from cross-validation (a validation file's tuning replaces them)."""
    selection: dict[str, Any] | None = None
    """The candidates' table and the choice, kept in every checkpoint."""
    head: HeadRecipe | None = None
    """How the encoder's head starts (`classifier.HeadRecipe`; the linear probe when None)."""


@dataclass
class _Prepared:
    learner: Learner
    loop: TrainLoop
    hp: Resolved
    resume_from: Path | None
    compiled: bool


def run_training(
    spec: TrainSpec, sink: EventSink, additions: Additions | None = None, parallel: Collective | None = None
) -> TrainResult:
    """Fine-tune `spec.base_model` on `spec.training_file`; checkpoints go to `spec.output_dir/step-N/`.

    A run that asks for more than one device (`hyperparameters.devices`, else `spec.devices`) starts its data-parallel
    processes here (`training.distributed`); each of them runs this function with its `parallel` group."""
    apply_threads()  # the worker trains in its own thread
    reuse_freed_memory()
    resolved_name = resolve_alias(spec.base_model)
    if resolved_name == AUTO:
        from localft.training.auto_classifier import run_auto

        return run_auto(spec, sink)
    if parallel is None:
        device = resolve_device(spec.device)
        processes = processes_for(spec, device)
        if processes > 1:
            return train_data_parallel(spec, sink, processes, device, additions)
        parallel = OneProcess()
    if resolved_name != spec.base_model:
        sink.log(f"Base model {spec.base_model} resolves to {resolved_name}")
    train = read_examples(spec.training_file)
    valid = read_examples(spec.validation_file) if spec.validation_file else []
    task = detect_task([ex.answer for ex in train], spec.task)
    run = _prepare(spec, sink, resolved_name, train, valid, task, additions or Additions(), parallel)
    loop = run.loop
    if run.resume_from is not None:
        loop.resume(run.resume_from)
        if isinstance(run.learner, EncoderLearner) and task.multi_label:
            run.learner.thresholds = list(read_checkpoint(run.resume_from).thresholds)
        sink.log(f"Resumed from {run.resume_from.name} (step {loop.progress.step} of {loop.total_steps})")
    final = loop.run() or run.resume_from  # resumed after the last epoch's checkpoint: nothing left to run
    if run.compiled:
        remember_compiled(spec.cache_dir or Settings.from_env().cache_dir, resolved_name)
    assert final is not None  # a run with at least one epoch always writes a checkpoint
    sink.log(f"Training finished: {loop.progress.step} steps, {loop.progress.trained_tokens} tokens")
    return TrainResult(
        final_checkpoint=final,
        trained_tokens=loop.progress.trained_tokens,
        steps=loop.progress.step,
        hyperparameters={**run.hp.to_dict(), "seed": spec.seed, "devices": parallel.world_size},
        metrics=loop.last_metrics,
    )


def fold_run(
    spec: TrainSpec, base_model: str, train: list[ChatExample], task: TaskInfo, head: HeadRecipe, sink: EventSink
) -> tuple[Learner, TrainLoop]:
    """The learner and loop of a run on examples already read, writing no checkpoints (`auto`'s cross-validation
    folds)."""
    fold = replace(spec, resume_from=None)
    run = _prepare(fold, sink, base_model, train, [], task, Additions(head=head), OneProcess())
    run.loop.writes_checkpoints = False
    return run.learner, run.loop


def _prepare(
    spec: TrainSpec,
    sink: EventSink,
    resolved_name: str,
    train: list[ChatExample],
    valid: list[ChatExample],
    task: TaskInfo,
    additions: Additions,
    parallel: Collective,
) -> _Prepared:
    """The model, data, learner and loop of a run, up to its first step."""
    device = resolve_device(spec.device)
    use_fast_matmul(device)
    cache_dir = spec.cache_dir or Settings.from_env().cache_dir
    model_dir = local_model_dir(resolved_name, cache_dir)
    family = model_family(resolved_name, model_dir)
    asked = resolve(spec.hyperparameters, family, len(train))
    hp = within_positions(asked, model_positions(model_dir))
    if hp.max_length != asked.max_length:
        sink.log(
            f"max_length {asked.max_length} is more than the {hp.max_length} positions of {resolved_name}: examples "
            f"are cut to {hp.max_length} tokens",
            level="warn",
        )
    _check_task(task, family, spec)
    sink.log(_describe(task, len(train), len(valid)))
    resume_from = spec.resume_from if spec.resume_from and _resumable(spec.resume_from, resolved_name, sink) else None

    torch.manual_seed(spec.seed)
    random.seed(spec.seed)
    tokenizer = _load_tokenizer(model_dir)
    shape = PromptShape.learn([ex.context for ex in train]) if task.task == "classification" else None
    learner, template = _build(family, model_dir, tokenizer, task, hp, device, spec, train, resolved_name, shape)
    if family == "causal_lm":  # the layers the default rule picked, as recorded with the job
        hp = replace(hp, lora_target_modules=learner.lora_targets)  # type: ignore[attr-defined]
    if isinstance(learner, EncoderLearner):
        learner.add_companions(additions.companions)
        if additions.thresholds:
            learner.thresholds = list(additions.thresholds)
    train_items = learner.make_items(train)
    valid_items = learner.make_items(_sample(valid, spec.seed))
    if isinstance(learner, EncoderLearner):
        learner.fit_class_weights(train_items)
        if resume_from is None:
            learner.start_head(train_items, additions.head, spec.seed)
    memory = plan_memory(
        learner.model.config,  # type: ignore[attr-defined]  # both learners hold a Hugging Face model
        free_memory(device),
        sum(p.numel() for group in learner.parameter_groups() for p in group.params),
        hp.max_length,
        TOKENS_PER_FORWARD[family],
    )
    if memory.checkpointing:
        use_gradient_checkpointing(learner.model)  # type: ignore[attr-defined]
    precision = "bf16 autocast" if bf16_available(device) else "fp32"
    own_rates = "".join(
        f", {group.name} at {group.learning_rate(hp.learning_rate):g}"
        for group in learner.parameter_groups()
        if group.learning_rate(hp.learning_rate) != hp.learning_rate
    )
    sink.log(
        f"Training {resolved_name} ({family}, {precision} on {_device_label(device, parallel.world_size)}): "
        f"{hp.n_epochs} epochs, batch size {hp.batch_size}, learning rate {hp.learning_rate:g} (multiplier "
        f"{hp.learning_rate_multiplier:g}{own_rates}), max length {hp.max_length} tokens"
    )
    if memory.free_bytes is not None:
        sink.log(f"GPU memory: {memory.describe()}")
    planned_tokens = hp.n_epochs * sum(learner.tokens(item) for item in train_items)
    cached = compiled_before(cache_dir, resolved_name)
    compiled = False
    if should_compile(spec.compile_layers, family, planned_tokens, device, cached):
        compiled = _compile(learner, cache_dir, cached, sink, device)

    def meta_for(step: int, epoch: int, metrics: dict[str, Any]) -> CheckpointMeta:
        pooled = isinstance(learner, EncoderLearner)
        return CheckpointMeta(
            base_model=resolved_name,
            family="classifier" if pooled else family,
            task=task.task,
            step=step,
            epoch=epoch,
            labels=list(task.labels),
            multi_label=task.multi_label,
            label_separator=task.label_separator,
            none_label=task.none_label,
            assistant_prefix=task.assistant_prefix,
            thresholds=list(getattr(learner, "thresholds", [])),
            max_length=hp.max_length,
            hyperparameters={**hp.to_dict(), "seed": spec.seed, "devices": parallel.world_size},
            metrics=metrics,
            chat_template=template,
            members=[m.to_dict() for m in learner.members()] if isinstance(learner, EncoderLearner) else [],
            prompt_shape=shape.to_dict() if shape is not None else None,
            selection=additions.selection,
        )

    plan = Plan(
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        seed=spec.seed,
        tokens_per_forward=memory.tokens_per_forward,
        forward_overhead=FORWARD_OVERHEAD[family],
        weight_decay=0.01 if family == "encoder" else 0.0,
    )
    loop = TrainLoop(
        learner,
        train_items,
        valid_items,
        plan,
        sink,
        spec.output_dir,
        meta_for,
        spec.max_checkpoints,
        spec.save_every_s,
        parallel=parallel,
    )
    return _Prepared(learner, loop, hp, resume_from, compiled)


def _compile(learner: Any, cache_dir: Path, cached: bool, sink: EventSink, device: str) -> bool:
    """Compile the learner's layers (both learners hold a `model` and a `compiled_layers` flag)."""
    layers = compile_layers(learner.model, cache_dir)
    if not layers:
        needs = "a C++ compiler" if device == "cpu" else "Triton"
        sink.log(f"torch.compile does not work on this machine (it needs {needs}): training runs uncompiled", "warn")
        return False
    learner.compiled_layers = True
    wait = "seconds: an earlier run's kernels are cached" if cached else "about half a minute the first time"
    where = "this CPU" if device == "cpu" else device
    sink.log(
        f"Compiling the model's {layers} layers for {where}: faster steps for a long run; the first steps wait for "
        f"the compiler ({wait})"
    )
    return True


def _device_label(device: str, processes: int) -> str:
    """`cpu`, or a GPU with its name (`cuda:0, NVIDIA H100 80GB HBM3`), as job events show it; with the number of
    data-parallel processes where there are several (`2 data-parallel processes on cuda, NVIDIA H100 ...`)."""
    label = device
    if device_type(device) == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        label = f"{device_type(device) if processes > 1 else device}, {name}"
    return f"{processes} data-parallel processes on {label}" if processes > 1 else label


def _load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not tokenizer.is_fast:
        raise ModelError(f"{model_dir} has no fast tokenizer (tokenizer.json); localft needs one to train.")
    return tokenizer


def _build(
    family: Family,
    model_dir: Path,
    tokenizer: Any,
    task: TaskInfo,
    hp: Resolved,
    device: str,
    spec: TrainSpec,
    train: list[ChatExample],
    resolved_name: str,
    shape: PromptShape | None,
) -> tuple[Learner, TemplateKind]:
    if family == "causal_lm":
        from localft.training.lora_causal import CausalLearner, LoraShape

        kind = template_kind(tokenizer)
        assert hp.lora_rank is not None and hp.lora_alpha is not None and hp.lora_dropout is not None  # an LLM's
        lora = LoraShape(hp.lora_rank, hp.lora_alpha, hp.lora_dropout, hp.lora_target_modules)
        encoder = ChatEncoder(tokenizer, kind, hp.max_length)
        causal = CausalLearner(model_dir, tokenizer, encoder, task, device, lora)
        if task.multi_label:
            causal.use_observed_answers([ex.answer for ex in train])
        return causal, kind
    learner = EncoderLearner(
        model_dir, tokenizer, task, device, hp.max_length, spec.class_weights, base_model=resolved_name, shape=shape
    )
    return learner, "model"


def _check_task(task: TaskInfo, family: Family, spec: TrainSpec) -> None:
    if family == "encoder" and task.task != "classification":
        raise DataValidationError(
            f"{spec.base_model} is an encoder and can only learn classification, but the answers in "
            f"{spec.training_file.name} look like free text (too many distinct or long answers). Use an LLM "
            "base model such as smollm2-135m-instruct, or make each answer one label from a small set.",
            param="training_file",
            code="invalid_training_file",
        )


def _resumable(folder: Path, base_model: str, sink: EventSink) -> bool:
    """Whether training continues from `folder`; a checkpoint from before encoders became pooled classifiers cannot
    be continued, so that run starts over."""
    meta = read_checkpoint(folder)
    if meta.base_model != base_model:
        raise ModelError(f"Checkpoint {folder} was trained from {meta.base_model}, not {base_model}.")
    if meta.family == "encoder":
        sink.log(f"{folder.name} holds an encoder of an earlier localft, which cannot be continued: starting over")
        return False
    return True


def _sample(examples: list[ChatExample], seed: int) -> list[ChatExample]:
    if len(examples) <= MAX_FULL_VALIDATION:
        return examples
    return random.Random(seed).sample(examples, MAX_FULL_VALIDATION)


def _describe(task: TaskInfo, n_train: int, n_valid: int) -> str:
    data = f"{n_train} training examples" + (f", {n_valid} validation examples" if n_valid else "")
    if task.task == "generation":
        return f"{data}; answers are free text, training a generative model"
    kind = "multi-label " if task.multi_label else ""
    shown = ", ".join(task.labels[:10]) + (", ..." if len(task.labels) > 10 else "")
    prefix = f" after the prefix {task.assistant_prefix!r}" if task.assistant_prefix else ""
    return f"{data}; {kind}classification into {len(task.labels)} labels{prefix}: {shown}"
