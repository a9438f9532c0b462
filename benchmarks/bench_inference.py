"""Inference speed: one classification request (p50 latency) and concurrent requests (throughput), LLM and encoder.

    .venv/bin/python -m benchmarks.bench_inference [--requests 40] [--concurrent 96] [--encoder-concurrent 480]
                                                   [--threads 2] [--int8 off auto on] [--arms default ...]

Uses the real built-in models (SmolLM2-135M-Instruct with a LoRA adapter, all-MiniLM-L6-v2 with a classification
head) on SST-2 sentences from ../shared/datasets. Adapters and heads are freshly initialised: speed does not depend
on what they learned. Two torch threads by default, as on the target machine; the load average is printed with the
figures because on a shared machine it changes them several-fold. Each `--int8` policy (`LOCALFT_INT8`) gets its
own engine, measured one after the other in the same run; a policy that holds a model exactly as a previous one
did is not measured twice. `--arms` compares the engine's defaults with one of its batching mechanisms switched off
(`arm_switch`); repeat the names to alternate them in one run. The benchmark's own tensor work (building the test
checkpoints, timing single requests) runs in threads that end with it, as a server's main thread does none: an idle
OpenMP team left in the main thread would slow the engine (`localft.inference.compute_thread`). Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".localft-test-cache"
SYSTEM = "Classify the sentiment of the movie review as positive or negative."
LABELS = ["positive", "negative"]


def _sentences(limit: int) -> list[str]:
    from benchmarks._harness import dataset_rows

    return [row["sentence"].strip() for row in dataset_rows("sst2/dev.tsv", limit, delimiter="\t")]


def _lora_checkpoint(base_dir: Path, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from localft.training.checkpoint import CheckpointMeta, write_meta

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    get_peft_model(model, config).save_pretrained(str(folder / "adapter"))
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder / "tokenizer")
    meta = CheckpointMeta(
        base_model="smollm2-135m-instruct", family="causal_lm", task="classification", step=1, epoch=1, labels=LABELS
    )
    write_meta(folder, meta)
    return folder


def _encoder_checkpoint(base_dir: Path, folder: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from localft.training.checkpoint import CheckpointMeta, write_meta

    AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2).save_pretrained(folder / "model")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(folder / "tokenizer")
    meta = CheckpointMeta(
        base_model="minilm-l6", family="encoder", task="classification", step=1, epoch=1, labels=LABELS, max_length=64
    )
    write_meta(folder, meta)
    return folder


def _latency(call: Callable[[str], object], texts: list[str]) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds of one call (CPU time is steadier on a shared machine)."""
    call(texts[0])  # warm-up: weights load, first-call allocations
    wall, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.process_time()
        call(text)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _bare_forward(engine: object, base: str, texts: list[str]) -> Callable[[str], object]:
    """One plain forward pass of the base model over the whole prompt (no cached system prompt, no labels)."""
    import torch

    from localft.base_models.templates import render_prompt
    from localft.inference.types import ModelArtifact

    info = engine.describe(ModelArtifact(base, base))  # type: ignore[attr-defined]
    weights = engine._weights  # type: ignore[attr-defined]

    def forward(text: str) -> object:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        prompt = render_prompt(info.tokenizer, messages, info.template)
        ids = info.tokenize(prompt.text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.inference_mode(), weights.running(info) as model:  # the base: loaded adapters switched off
            return model(input_ids=ids, logits_to_keep=1)

    return lambda text: engine.compute.run(forward, text)  # type: ignore[attr-defined]  # where the engine runs


def grouping_switch() -> Callable[[bool], None]:
    """Turns the engine's grouping of a batch into passes by length on or off. Off = a pass cost so large that
    every batch runs as one padded pass."""
    from localft.base_models import scoring

    defaults = {"PASS_OVERHEAD": scoring.PASS_OVERHEAD, "ENCODER_PASS_OVERHEAD": scoring.ENCODER_PASS_OVERHEAD}

    def switch(on: bool) -> None:
        for name, value in defaults.items():
            setattr(scoring, name, value if on else 1 << 30)

    return switch


ARMS = ("default", "no grouping", "no gathering", "no compute thread", "no merging")
"""Engine settings a run can compare (`--arms`): the defaults, or one mechanism switched off."""


def arm_switch(engine: object, checkpoint: Path | None) -> Callable[[str], None]:
    """Puts `engine` into one of `ARMS`:
    - "no grouping": each batch of concurrent requests runs as one padded pass (`grouping_switch`);
    - "no gathering": a batch starts as soon as its leader gets the lock, without waiting for requests still being
      prepared (`localft.inference.batching`);
    - "no compute thread": the request thread that leads a batch runs it itself
      (`localft.inference.compute_thread`);
    - "no merging": a LoRA fine-tune runs through its adapter layers instead of merged weights
      (`localft.inference.models`); switching reloads `checkpoint` (None: a model without adapters)."""
    from localft.inference import models

    set_grouping = grouping_switch()
    scorer, compute = engine.scorer, engine.compute  # type: ignore[attr-defined]
    gather, run, merge = scorer._gather_seconds, compute.run, models._merged_weights
    merging = [True]

    def switch(arm: str) -> None:
        set_grouping(arm != "no grouping")
        scorer._gather_seconds = 0.0 if arm == "no gathering" else gather
        compute.run = (lambda fn, *args: fn(*args)) if arm == "no compute thread" else run
        if checkpoint is not None and merging[0] != (arm != "no merging"):
            merging[0] = arm != "no merging"
            models._merged_weights = merge if merging[0] else (lambda model, adapter: [])
            engine.evict(checkpoint)  # type: ignore[attr-defined]  # the next request loads it the other way

    return switch


def throughput(call: Callable[[str], object], texts: list[str], threads: int) -> float:
    chunks = [texts[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)

    def run(chunk: list[str]) -> None:
        barrier.wait()
        for text in chunk:
            call(text)

    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    return len(texts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    from localft.base_models import in_passing_thread, local_model_dir, use_threads
    from localft.inference.engine import InferenceEngine
    from localft.inference.precision import compute_dtype, int8_applies
    from localft.inference.types import ChatRequest, ModelArtifact

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="sequential requests timed for the p50 latency")
    parser.add_argument("--concurrent", type=int, default=96, help="requests sent from 16 threads for throughput")
    parser.add_argument(
        "--encoder-concurrent", type=int, default=480, help="the same for the encoder (96 of them take half a second)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--int8", nargs="*", default=["off", "auto", "on"], choices=["off", "auto", "on"])
    parser.add_argument("--arms", nargs="*", default=["default"], choices=ARMS, help="(repeat to alternate)")
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks` calls main() with its own argv
    use_threads(args.threads)  # every request thread, not only this one (base_models.apply_threads)
    texts = _sentences(args.requests + max(args.concurrent, args.encoder_concurrent))
    rows = []
    held: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        setups = [
            ("SmolLM2-135M + LoRA", "smollm2-135m-instruct", "causal_lm", _lora_checkpoint),
            ("MiniLM-L6 + head", "minilm-l6", "encoder", _encoder_checkpoint),
        ]
        for name, base, family, make in setups:
            checkpoint = in_passing_thread(make, local_model_dir(base, CACHE), Path(tmp) / base)
            artifact = ModelArtifact(name, base, checkpoint)
            measured: set[bool] = set()
            for policy in args.int8:
                int8 = int8_applies(policy, family, "cpu")
                if int8 in measured:
                    continue
                measured.add(int8)
                engine = InferenceEngine(CACHE, device="cpu", int8=policy)
                weights = "int8" if int8 else str(compute_dtype("cpu")).removeprefix("torch.")

                def call(text: str, engine: InferenceEngine = engine, artifact: ModelArtifact = artifact) -> object:
                    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
                    return engine.chat(artifact, ChatRequest(messages, temperature=0, logprobs=True, top_logprobs=2))

                set_arm = arm_switch(engine, checkpoint if family == "causal_lm" else None)
                for arm in args.arms:
                    set_arm(arm)
                    p50, cpu = in_passing_thread(_latency, call, texts[: args.requests])
                    batches = engine.scorer.batches_run
                    concurrent = args.concurrent if family == "causal_lm" else args.encoder_concurrent
                    rate = throughput(call, texts[args.requests :][:concurrent], threads=16)
                    mean_batch = concurrent / max(1, engine.scorer.batches_run - batches)
                    cells = [f"{p50 * 1000:.0f}", f"{cpu * 1000:.0f}", f"{rate:.1f}", f"{mean_batch:.1f}"]
                    label = name if args.arms == ["default"] else f"{name}, {arm}"
                    rows.append((label, weights, *cells))
                set_arm("default")
                call(texts[0])  # loaded as the defaults load it, for the memory figure
                held[f"{name} ({weights})"] = engine.memory_bytes / 2**20
                if family == "causal_lm" and not int8:
                    bare, bare_cpu = in_passing_thread(
                        _latency, _bare_forward(engine, base, texts), texts[: args.requests]
                    )
                    rows.append(
                        (
                            "(reference: bare forward of the whole prompt)",
                            weights,
                            f"{bare * 1000:.0f}",
                            f"{bare_cpu * 1000:.0f}",
                            "",
                            "",
                        )
                    )
                del engine
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()
    print(f"torch threads: {args.threads}; load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print("| model | weights | one request p50 (ms) | CPU per request p50 (ms) | concurrent requests/s | mean batch |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nweights held by the engine: " + ", ".join(f"{k} {v:.0f} MiB" for k, v in held.items()))
    print(f"peak RSS of the benchmark process (includes building the test checkpoints in fp32): {peak:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
