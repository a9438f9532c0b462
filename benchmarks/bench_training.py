"""Training speed: LoRA tokens/s on the built-in LLMs, encoder fine-tuning examples/s, peak memory.

    .venv/bin/python -m benchmarks.bench_training [--steps 6] [--threads 2] [--only NAME ...] [--rounds N]
                                                  [--lengths] [--alternate SWITCH] [--real-runs N]
    SWITCH: kernels, skip-adapter-casts, compiled (LLMs); attention-dropout, hidden-dropout, word-embeddings (encoders)

Each configuration runs in its own process (so peak RSS is its own) with two threads, on real tweets from
../shared/datasets/twitter_airline_sentiment rendered as chat classification examples. LLM rows use batches of 8
examples truncated to exactly 128 tokens, the encoder rows batches of 32 at 64 tokens. The optimizer steps are the
engine's own (`localft.training.lora_causal` / `encoder_head` + the shared loop's AdamW). The "compiled layers" rows
run the layers through torch.compile, as the engine does for long LLM runs (`localft.training.compilation`); the "first
2 steps" column shows what compiling costs (inductor's cache is .localft-test-cache/compiled: delete it for a cold
start). The "full logits", "fp32", "SDPA attention" and "peft's adapter input casts" rows switch off one of the CPU
speed-ups for comparison (`localft.training.kernels`, `lora_causal.skip_adapter_input_casts`); `--rounds 2` alternates
the chosen rows
twice, each in its own process. `--alternate SWITCH` instead switches one speed-up off and on again on one learner
in one process, `--rounds` times (default 6): the fairest A/B on a noisy machine. `--real-runs N` instead trains
whole runs (`run_training`, N Jigsaw comments of real lengths, one epoch) eager and compiled with an empty and a warm
kernel cache, in alternating orders: what compiling costs and saves in a run. Prints Markdown tables; timings are
medians.
First, a table of example lengths in tokens on the shared datasets (the input for the truncation default).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from benchmarks._harness import (
    RecordingSink,
    attention_dropout_switch,
    compiled_switch,
    dataset_rows,
    hidden_dropout_switch,
    kernels_switch,
    skip_casts_switch,
    word_embeddings_switch,
)

if TYPE_CHECKING:
    from localft.settings import CompilePolicy

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".localft-test-cache"
SYSTEM = "Classify the sentiment of the tweet about a US airline: positive, negative or neutral."


class Config(NamedTuple):
    name: str
    base: str
    bf16: bool = True
    """bf16 autocast where the CPU has it. Rows that switch it off are skipped on CPUs without native bf16: the
    engine already runs fp32 there, so they would repeat the first row."""
    sliced: bool = True
    """Logits only on answer positions (LLMs)."""
    kernels: bool = True
    """localft.training.kernels: eager attention for short passes, the fast dropout mask."""
    adapter_casts: bool = False
    """LLMs: peft's cast of each LoRA layer's input to fp32 left on (`lora_causal.skip_adapter_input_casts`)."""
    compiled: bool = False
    """The layers compiled (`localft.training.compilation`), as `auto` does for long LLM runs (encoders: only with
    `LOCALFT_COMPILE=on`)."""
    reuse_memory: bool = True
    """glibc keeps freed blocks up to 256 MB for reuse (`base_models.reuse_freed_memory`), as training does."""
    own_attention_dropout: bool = False
    """Encoders: the model's own attention dropout (0.1 for MiniLM) instead of `encoder_head.ATTENTION_DROPOUT`."""
    own_hidden_dropout: bool = False
    """Encoders: the model's own hidden-state dropout (0.1 for MiniLM) instead of `encoder_head.HIDDEN_DROPOUT`."""


CONFIGS: list[Config] = [
    Config("smollm2-135m-instruct, compiled layers", "smollm2-135m-instruct", compiled=True),
    Config("smollm2-135m-instruct", "smollm2-135m-instruct"),
    Config("smollm2-135m-instruct, glibc's default reuse of freed memory", "smollm2-135m-instruct", reuse_memory=False),
    Config("smollm2-135m-instruct, SDPA attention", "smollm2-135m-instruct", kernels=False),
    Config("smollm2-135m-instruct, peft's adapter input casts", "smollm2-135m-instruct", adapter_casts=True),
    Config("smollm2-135m-instruct, full logits", "smollm2-135m-instruct", sliced=False),
    Config("smollm2-135m-instruct, fp32", "smollm2-135m-instruct", bf16=False),
    Config("smollm2-135m-instruct, fp32 + full logits", "smollm2-135m-instruct", bf16=False, sliced=False),
    Config("gemma-3-270m, compiled layers", "gemma-3-270m", compiled=True),
    Config("gemma-3-270m", "gemma-3-270m"),
    Config("gemma-3-270m, glibc's default reuse of freed memory", "gemma-3-270m", reuse_memory=False),
    Config("gemma-3-270m, SDPA attention", "gemma-3-270m", kernels=False),
    Config("gemma-3-270m, peft's adapter input casts", "gemma-3-270m", adapter_casts=True),
    Config("minilm-l6, compiled layers", "minilm-l6", compiled=True),
    Config("minilm-l6", "minilm-l6"),
    Config("minilm-l6, glibc's default reuse of freed memory", "minilm-l6", reuse_memory=False),
    Config("minilm-l6, SDPA attention + torch dropout", "minilm-l6", kernels=False),
    Config("minilm-l6, the model's attention dropout (0.1)", "minilm-l6", own_attention_dropout=True),
    Config("minilm-l6, the model's hidden-state dropout (0.1)", "minilm-l6", own_hidden_dropout=True),
]


def gemm_ceiling(threads: int) -> str:
    """Matrix-multiply throughput of this CPU in fp32 and bf16 at a transformer layer's shape (the roof a training
    step cannot exceed), measured in a fresh process so the figure is this machine's, not the datasheet's."""
    import torch

    torch.set_num_threads(threads)
    rates = []
    for dtype in (torch.float32, torch.bfloat16):
        a, w = torch.randn(1024, 576, dtype=dtype), torch.randn(1536, 576, dtype=dtype)
        a @ w.t()
        runs = 3 if dtype == torch.bfloat16 else 20
        started = time.perf_counter()
        for _ in range(runs):
            a @ w.t()
        rates.append(2 * 1024 * 576 * 1536 * runs / (time.perf_counter() - started) / 1e9)
    return f"matmul 1024x576x1536, {threads} threads: fp32 {rates[0]:.0f} GFLOP/s, bf16 {rates[1]:.0f} GFLOP/s"


def _examples(n: int) -> list[Any]:
    from localft.training.dataset import ChatExample

    rows = dataset_rows("twitter_airline_sentiment/Tweets.csv", n)
    # Four tweets per example, so every example reaches the length the figures are quoted at, then is truncated.
    return [
        ChatExample(
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": "\n".join(row["text"] for row in rows[i : i + 4])},
                {"role": "assistant", "content": rows[i]["airline_sentiment"]},
            ],
            line=i + 1,
        )
        for i in range(0, len(rows) - 3, 4)
    ]


class _Setup(NamedTuple):
    learner: Any
    loop: Any
    items: list[Any]
    batch: int
    length: int


def _prepare(config: Config, steps: int, threads: int) -> _Setup:
    """The configuration's learner and training loop, in this process, with items of exactly the quoted length."""
    import torch

    torch.set_num_threads(threads)
    if config.reuse_memory:
        from localft.base_models import reuse_freed_memory

        reuse_freed_memory()
    import localft.training.loop as loop_module
    import localft.training.lora_causal as causal_module
    from localft.base_models import local_model_dir, model_family
    from localft.training.loop import Plan, TrainLoop
    from localft.training.run import _load_tokenizer
    from localft.training.task import detect_task

    base = config.base
    if not config.bf16:  # autocast() and the learner read these at call time
        loop_module.bf16_available = causal_module.bf16_available = lambda device: False
    model_dir = local_model_dir(base, CACHE)
    family = model_family(base, model_dir)
    tokenizer = _load_tokenizer(model_dir)
    batch = 8 if family == "causal_lm" else 32
    length = 128 if family == "causal_lm" else 64
    examples = _examples(4 * batch * (steps + 2))
    task = detect_task([ex.answer for ex in examples])
    learner: Any
    if family == "causal_lm":
        from localft.base_models.templates import template_kind
        from localft.training.dataset import ChatEncoder
        from localft.training.lora_causal import CausalLearner

        encoder = ChatEncoder(tokenizer, template_kind(tokenizer), max_length=length)
        learner = CausalLearner(model_dir, tokenizer, encoder, task, "cpu")
        if not config.sliced:
            learner.loss = _full_logits_loss(learner)
    else:
        from localft.training.encoder_head import EncoderLearner

        learner = EncoderLearner(model_dir, tokenizer, task, "cpu", max_length=length)
    if not config.kernels:
        kernels_switch(learner.model)(False)
    if config.adapter_casts:
        skip_casts_switch(learner.model)(False)
    if config.own_attention_dropout:
        attention_dropout_switch(learner.model)(False)
    if config.own_hidden_dropout:
        hidden_dropout_switch(learner.model)(False)
    if config.compiled:
        from localft.training.compilation import compile_layers

        assert compile_layers(learner.model, CACHE), "torch.compile does not work here"
        learner.compiled_layers = True
    items = [it for it in learner.make_items(examples) if learner.tokens(it) == length]
    plan = Plan(n_epochs=1, batch_size=batch, learning_rate=1e-4, seed=0, tokens_per_forward=1 << 20)
    loop = TrainLoop(learner, items, [], plan, RecordingSink(), Path("/nonexistent"), lambda *a: None)  # type: ignore[arg-type,return-value]
    return _Setup(learner, loop, items, batch, length)


def _step_times(setup: _Setup, first: int, count: int) -> list[float]:
    """Seconds of `count` optimizer steps on consecutive batches, starting at batch `first`."""
    times = []
    for i in range(first, first + count):
        chunk = setup.items[(i * setup.batch) % len(setup.items) :][: setup.batch]
        started = time.perf_counter()
        setup.loop._step(chunk, 0)
        times.append(time.perf_counter() - started)
    return times


def _run_one(config: Config, steps: int, threads: int) -> dict[str, Any]:
    import localft.training.loop as loop_module

    setup = _prepare(config, steps, threads)
    warmup = sum(_step_times(setup, 0, 2))  # lazy initialisation (oneDNN kernels, allocator) and compiling
    step = statistics.median(_step_times(setup, 2, steps))
    batch, length = setup.batch, setup.length
    tokens = batch * length
    return {
        "name": config.name,
        "precision": "bf16 autocast" if loop_module.bf16_available("cpu") else "fp32",
        "batch": f"{batch} x {length}",
        "s_per_step": step,
        "tokens_per_s": tokens / step,
        "examples_per_s": batch / step,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "warmup_s": warmup,
    }


SWITCHES: dict[str, Callable[[Any], Callable[[bool], None]]] = {
    "kernels": lambda learner: kernels_switch(learner.model),
    "skip-adapter-casts": lambda learner: skip_casts_switch(learner.model),
    "compiled": compiled_switch,
    "attention-dropout": lambda learner: attention_dropout_switch(learner.model),
    "hidden-dropout": lambda learner: hidden_dropout_switch(learner.model),
    "word-embeddings": lambda learner: word_embeddings_switch(learner.model),
}
"""Speed-ups `--alternate` can switch off and on again in one process, on one learner."""


def _alternate(base: str, switch: str, steps: int, threads: int, rounds: int) -> dict[str, Any]:
    """Tokens/s of the engine's default and of the default with `switch` off, alternating on one learner (the
    fairest A/B on a noisy machine: same process, same memory, interleaved in time)."""
    setup = _prepare(Config(base, base, compiled=switch == "compiled"), steps, threads)
    set_default = SWITCHES[switch](setup.learner)  # on = the engine's default (for long runs, if compiled)
    _step_times(setup, 0, 2)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for on in (True, False) if r % 2 == 0 else (False, True):
            set_default(on)
            step = statistics.median(_step_times(setup, 2 + r * steps, steps))
            rates[on].append(setup.batch * setup.length / step)
    return {"model": base, "default": rates[True], "off": rates[False]}


def _full_logits_loss(learner: Any) -> Any:
    """The textbook loss: logits for every position, then cross-entropy where labels are set (for comparison)."""
    import torch
    import torch.nn.functional as F

    from localft.training.dataset import IGNORE
    from localft.training.loop import BatchLoss, autocast

    def loss(items: Any) -> BatchLoss:
        ids = torch.tensor([it.encoded.input_ids for it in items])
        labels = torch.tensor([it.encoded.labels for it in items])
        with autocast("cpu"):
            logits = learner.model(input_ids=ids).logits.float()
        shifted, gold = logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
        total = F.cross_entropy(shifted, gold, ignore_index=IGNORE, reduction="sum")
        keep = gold != IGNORE
        correct = int((shifted.detach().argmax(-1)[keep] == gold[keep]).sum())
        return BatchLoss(loss_sum=total, n_targets=int(keep.sum()), n_correct=correct)

    return loss


def _real_run(base: str, compile_policy: CompilePolicy, comments: int, kernel_cache: str) -> dict[str, Any]:
    """One `run_training` run on real-length data (Jigsaw comments, one epoch, batch 8), in this process, with
    inductor's kernels in the folder `kernel_cache`."""
    import os
    import tempfile

    from torch._dynamo.utils import counters

    from benchmarks._harness import write_chat_jsonl
    from benchmarks.bench_jigsaw import SYSTEM, splits
    from localft.training import Hyperparameters, TrainSpec, run_training

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = kernel_cache  # compilation.kernel_cache honours the user's folder
    with tempfile.TemporaryDirectory() as tmp:
        train = write_chat_jsonl(Path(tmp) / "train.jsonl", splits()["train"][:comments], SYSTEM)
        hp = Hyperparameters(n_epochs=1, batch_size=8)
        out = Path(tmp) / "out"
        spec = TrainSpec(base, train, out, None, hp, cache_dir=CACHE, save_every_s=None, compile_layers=compile_policy)
        sink = RecordingSink()
        started = time.perf_counter()
        result = run_training(spec, sink)
        total = time.perf_counter() - started
    steps = [b - a for a, b in zip(sink.metric_times, sink.metric_times[1:], strict=False)]
    return {
        "total": total,
        "tokens": result.trained_tokens,
        "graphs": int(counters["stats"]["unique_graphs"]),
        "later_steps": sum(steps[3:]),  # from the 5th step: compiling is over by then
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def real_runs(models: list[str], comments: int, rounds: int) -> None:
    """Whole runs on real-length batches, each in its own process: eager, compiled with an empty kernel cache
    (cold) and compiled again with the kernels that cold run left (warm), in alternating orders. What compiling costs
    and saves in a run: the input of `compilation.COMPILE_MIN_TOKENS` and `COMPILE_MIN_TOKENS_CACHED`."""
    import shutil
    import tempfile

    context = multiprocessing.get_context("spawn")
    print(
        "| model | compile | tokens | total s | compiled graphs | steps from the 5th, s | peak RSS GB |\n"
        "|---|---|---|---|---|---|---|"
    )
    for base in models:
        for r in range(rounds):
            kernels = tempfile.mkdtemp(prefix="localft-bench-kernels-")
            arms = ["cold", "warm", "eager"] if r % 2 == 0 else ["eager", "cold", "warm"]
            for arm in arms:
                policy: CompilePolicy = "off" if arm == "eager" else "on"
                with context.Pool(1) as pool:
                    run = pool.apply(_real_run, (base, policy, comments, kernels))
                print(
                    f"| {base} | {arm} | {run['tokens']} | {run['total']:.1f} | {run['graphs']} | "
                    f"{run['later_steps']:.1f} | {run['peak_gb']:.1f} |",
                    flush=True,
                )
            shutil.rmtree(kernels, ignore_errors=True)


LENGTH_SOURCES: dict[str, tuple[str, str, str]] = {
    # dataset: (file under ../shared/datasets, text column, delimiter)
    "twitter_airline_sentiment": ("twitter_airline_sentiment/Tweets.csv", "text", ","),
    "sst2": ("sst2/dev.tsv", "sentence", "\t"),
    "banking77": ("banking77/test.csv", "text", ","),
    "emotion": ("emotion/val.txt", "text", ";"),
    "jigsaw_toxic": ("jigsaw_toxic/train.5k.csv", "comment_text", ","),
}


def lengths(limit: int = 2000) -> None:
    """Prompt + answer tokens per example with SmolLM2's chat template: what the truncation default must cover."""
    import numpy as np

    from localft.base_models import local_model_dir
    from localft.base_models.templates import template_kind
    from localft.training.dataset import ChatEncoder
    from localft.training.run import _load_tokenizer

    tokenizer = _load_tokenizer(local_model_dir("smollm2-135m-instruct", CACHE))
    encoder = ChatEncoder(tokenizer, template_kind(tokenizer), max_length=1 << 20)
    print("| dataset | examples | p50 | p95 | p99 | max | over 512 |")
    print("|---|---|---|---|---|---|---|")
    for name, (file, column, delimiter) in LENGTH_SOURCES.items():
        texts = [row[column] for row in dataset_rows(file, limit, delimiter=delimiter)]
        sizes = np.array(
            [
                len(
                    encoder.encode(
                        [
                            {"role": "system", "content": SYSTEM},
                            {"role": "user", "content": text},
                            {"role": "assistant", "content": "negative"},
                        ]
                    )
                )
                for text in texts
            ]
        )
        p50, p95, p99 = np.percentile(sizes, [50, 95, 99])
        print(
            f"| {name} | {len(sizes)} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {sizes.max()} | "
            f"{(sizes > 512).mean():.1%} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per configuration")
    parser.add_argument("--only", nargs="*", default=None, help="configuration names to run (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2, as on the target machine)")
    parser.add_argument("--lengths", action="store_true", help="only the token-length table of the shared datasets")
    parser.add_argument("--rounds", type=int, default=1, help="run the configurations this many times, alternating")
    parser.add_argument(
        "--alternate",
        choices=list(SWITCHES),
        help="only an in-process A/B of one speed-up (the LLMs unless --only names others; --rounds, default 6)",
    )
    parser.add_argument(
        "--real-runs",
        type=int,
        metavar="COMMENTS",
        help="only whole runs on this many Jigsaw comments: eager, compiled cold and warm (LLMs; --rounds, default 2)",
    )
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks NAME` keeps its own argv
    context = multiprocessing.get_context("spawn")
    if args.real_runs:
        real_runs(args.only or ["smollm2-135m-instruct", "gemma-3-270m"], args.real_runs, max(args.rounds, 2))
        return
    if args.alternate:
        models = args.only or ["smollm2-135m-instruct", "gemma-3-270m"]
        rounds = args.rounds if args.rounds > 1 else 6
        print(f"| model | default tokens/s | {args.alternate} off tokens/s | median ratio |\n|---|---|---|---|")
        for base in models:
            with context.Pool(1) as pool:
                r = pool.apply(_alternate, (base, args.alternate, args.steps, args.threads, rounds))
            ratio = statistics.median(d / o for d, o in zip(r["default"], r["off"], strict=True))
            cells = [", ".join(f"{x:.0f}" for x in r[k]) for k in ("default", "off")]
            print(f"| {base} | {cells[0]} | {cells[1]} | {ratio:.3f} |", flush=True)
        return
    lengths()
    if args.lengths:
        return
    from localft.training.loop import bf16_available

    native_bf16 = bf16_available("cpu")
    configs = [c for c in CONFIGS if (not args.only or c.name in args.only) and (native_bf16 or c.bf16)]
    with context.Pool(1) as pool:
        print(f"\n{pool.apply(gemm_ceiling, (args.threads,))}; native bf16: {native_bf16}\n", flush=True)
    print(
        "| configuration | precision | batch (examples x tokens) | s/step | tokens/s | examples/s | peak RSS GB "
        "| first 2 steps s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for config in configs * args.rounds:
        with context.Pool(1) as pool:
            r = pool.apply(_run_one, (config, args.steps, args.threads))
        print(
            f"| {r['name']} | {r['precision']} | {r['batch']} | {r['s_per_step']:.2f} | {r['tokens_per_s']:.0f} | "
            f"{r['examples_per_s']:.1f} | {r['peak_gb']:.1f} | {r['warmup_s']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
