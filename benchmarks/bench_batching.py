"""Real-length batches: what grouping a batch's rows into forward passes by length saves, and what a pass costs.

    .venv/bin/python -m benchmarks.bench_batching [--steps 12] [--threads 2] [--only smollm2-135m-instruct]

Texts vary in length, and a forward pass computes every row at its longest row's length. The loop
(`localft.base_models.grouping`) sorts a batch by length and cuts it into passes where the padding saved
outweighs a pass's fixed cost. For each model this benchmark

1. times a training step's forward and backward pass at several uniform shapes (rows x tokens) and fits
   `seconds = fixed + per_token x tokens`: `fixed / per_token` is the pass's fixed cost in tokens, the
   `FORWARD_OVERHEAD` of `localft.training.auto`; then the same for an inference pass (weights in inference's
   precision, no grad, logits at the last two positions), the `PASS_OVERHEAD`s of `localft.base_models.scoring`;
2. trains on Jigsaw comments (the shared train pools, as multi-label chat examples
   truncated to the engine's default length) in the engine's own batches, alternating each batch between one padded
   pass ("pad to the longest"), the engine's grouping ("by length") and that grouping with the training kernels off
   (`localft.training.kernels`: SDPA attention, torch's dropout). Same batches, same process: the ratios are the
   figures to read; all rows count real tokens, not padding;
3. classifies 64 texts in batches of 8 (what the engine's batching of concurrent requests hands the scorer) with
   inference's own functions, grouping off and on, alternating: short SST-2 sentences and Jigsaw comments.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import DATASETS, RecordingSink, dataset_rows, kernels_switch
from benchmarks.bench_inference import grouping_switch

CACHE = Path(__file__).resolve().parent.parent / ".localft-test-cache"
SHAPES = [(1, 32), (1, 128), (1, 256), (4, 32), (4, 128), (8, 64), (8, 128), (2, 256)]
"""(rows, tokens) of the timed passes: within the encoder's 256-token limit."""
MODELS = ["smollm2-135m-instruct", "minilm-l6"]
KERNELS_OFF = "by length, kernels off"
"""The training A/B's third arm: grouped by length, with SDPA attention and torch's dropout
(`localft.training.kernels` switched off)."""
PADDED = 1 << 30
"""A forward overhead so large that every batch is one pass: the padding the loop did before grouping by length."""


def _jigsaw_examples(limit: int) -> list[Any]:
    import pandas as pd

    from benchmarks.bench_jigsaw import SYSTEM, answer
    from localft.training.dataset import ChatExample

    pools = DATASETS / "jigsaw_toxic" / "data_pools"
    frame = pd.concat([pd.read_csv(pools / "train.a.ok.1k.csv"), pd.read_csv(pools / "train.a.bad.1k.csv")])
    frame = frame.sample(n=limit, random_state=0)
    return [
        ChatExample(
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": str(row["comment_text"])},
                {"role": "assistant", "content": answer(row)},
            ],
            line=i + 1,
        )
        for i, (_, row) in enumerate(frame.iterrows())
    ]


def _learner(base: str, examples: list[Any]) -> tuple[Any, str]:
    from localft.base_models import load_tokenizer, local_model_dir, model_family
    from localft.training.auto import MAX_LENGTH
    from localft.training.task import detect_task

    model_dir = local_model_dir(base, CACHE)
    family = model_family(base, model_dir)
    tokenizer = load_tokenizer(base, CACHE)
    task = detect_task([ex.answer for ex in examples])
    if family == "causal_lm":
        from localft.base_models.templates import template_kind
        from localft.training.dataset import ChatEncoder
        from localft.training.lora_causal import CausalLearner

        encoder = ChatEncoder(tokenizer, template_kind(tokenizer), max_length=MAX_LENGTH[family])
        return CausalLearner(model_dir, tokenizer, encoder, task, "cpu"), family
    from localft.training.encoder_head import EncoderLearner

    return EncoderLearner(model_dir, tokenizer, task, "cpu", max_length=MAX_LENGTH[family]), family


def _pass_seconds(learner: Any, items: list[Any], rows: int, width: int) -> float:
    """One forward and backward pass over `rows` items cut to `width` tokens (best of three)."""
    import dataclasses

    from localft.training.dataset import Encoded

    def cut(item: Any) -> Any:
        if hasattr(item, "encoded"):  # a causal item: keep the answer tokens at the end, as truncation does
            ids, labels = item.encoded.input_ids, item.encoded.labels
            return dataclasses.replace(
                item, encoded=Encoded(ids[: width - 8] + ids[-8:], labels[: width - 8] + labels[-8:])
            )
        return dataclasses.replace(item, input_ids=item.input_ids[:width])

    batch = [cut(it) for it in items if learner.tokens(it) >= width][:rows]
    assert len(batch) == rows and all(learner.tokens(it) == width for it in batch)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        learner.loss(batch).loss_sum.backward()
        times.append(time.perf_counter() - started)
    learner.model.zero_grad(set_to_none=True)
    return min(times)


def _infer_seconds(learner: Any, items: list[Any], rows: int, width: int) -> float:
    """One inference forward pass over `rows` items cut to `width` tokens (best of three)."""
    import torch

    ids = torch.tensor([_ids(learner, it)[:width] for it in items if learner.tokens(it) >= width][:rows])
    assert ids.shape == (rows, width)
    causal = hasattr(items[0], "encoded")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        with torch.inference_mode():
            if causal:
                learner.model(input_ids=ids, logits_to_keep=2)
            else:
                learner.model(input_ids=ids)
        times.append(time.perf_counter() - started)
    return min(times)


def _ids(learner: Any, item: Any) -> list[int]:
    return list(item.encoded.input_ids) if hasattr(item, "encoded") else list(item.input_ids)


def _fit(shape_times: list[tuple[int, int, float]]) -> tuple[float, float]:
    """(fixed seconds, seconds per token) of `seconds = fixed + per_token x rows x width`, least squares."""
    import numpy as np

    tokens = np.array([rows * width for rows, width, _ in shape_times], dtype=float)
    seconds = np.array([t for _, _, t in shape_times])
    per_token, fixed = np.polyfit(tokens, seconds, 1)
    return float(fixed), float(per_token)


def _run_model(base: str, steps: int, threads: int) -> dict[str, Any]:
    from localft.base_models import apply_threads, use_threads
    from localft.base_models.grouping import group_by_length
    from localft.inference.precision import compute_dtype
    from localft.training.auto import AUTO_BATCH_SIZE, FORWARD_OVERHEAD, TOKENS_PER_FORWARD
    from localft.training.loop import Plan, TrainLoop, epoch_order

    use_threads(threads)
    apply_threads()
    examples = _jigsaw_examples(8 * 16 * (max(steps, 1) + 2))
    learner, family = _learner(base, examples)
    items = learner.make_items(examples)
    learner.set_training(True)
    _pass_seconds(learner, items, 2, 64)  # warm-up: oneDNN kernels, allocator
    shape_times = [(rows, width, _pass_seconds(learner, items, rows, width)) for rows, width in SHAPES]
    fixed, per_token = _fit(shape_times)

    batch = AUTO_BATCH_SIZE[family]
    order = epoch_order(len(items), 0, 0)
    batches = [[items[i] for i in order[s : s + batch]] for s in range(0, batch * (steps + 2), batch)] if steps else []
    overheads = {
        "padded": PADDED,
        "by length": FORWARD_OVERHEAD[family],
        KERNELS_OFF: FORWARD_OVERHEAD[family],
    }
    set_kernels = kernels_switch(learner.model)
    results: dict[str, dict[str, list[float]]] = {
        name: {"seconds": [], "computed": [], "passes": []} for name in overheads
    }
    loops = {}
    for name, overhead in overheads.items():
        plan = Plan(1, batch, 1e-4, 0, TOKENS_PER_FORWARD[family], forward_overhead=overhead)
        loops[name] = TrainLoop(learner, items, [], plan, RecordingSink(), Path("/nonexistent"), lambda *a: None)  # type: ignore[arg-type,return-value]
    real = []
    for i, chunk in enumerate(batches):
        lengths = [learner.tokens(it) for it in chunk]
        real.append(sum(lengths))
        # Alternate which arm goes first, so none always runs on a warmer cache.
        names = list(overheads) if i % 2 == 0 else list(reversed(overheads))
        for name in names:
            parts = group_by_length(chunk, lengths, TOKENS_PER_FORWARD[family], overheads[name])
            set_kernels(name != KERNELS_OFF)
            started = time.perf_counter()
            loops[name]._step(chunk, 0)
            if i >= 2:  # the first steps pay for lazy initialisation
                results[name]["seconds"].append(time.perf_counter() - started)
                results[name]["computed"].append(sum(len(p) * max(learner.tokens(it) for it in p) for p in parts))
                results[name]["passes"].append(len(parts))
    set_kernels(True)
    measured_real = sum(real[2:])
    learner.set_training(False)
    learner.model.to(compute_dtype("cpu"))  # as inference holds the weights
    infer_times = [(rows, width, _infer_seconds(learner, items, rows, width)) for rows, width in SHAPES]
    infer_fixed, infer_per_token = _fit(infer_times)
    rows = []
    for name, r in results.items() if steps else []:
        rows.append(
            {
                "grouping": name,
                "s_per_step": statistics.median(r["seconds"]),
                "real_tokens_per_s": measured_real / sum(r["seconds"]),
                "computed_per_real": sum(r["computed"]) / measured_real,
                "passes_per_step": statistics.mean(r["passes"]),
            }
        )
    return {
        "model": base,
        "shapes": shape_times,
        "fixed_s": fixed,
        "per_token_ms": per_token * 1000,
        "overhead_tokens": fixed / per_token,
        "infer_shapes": infer_times,
        "infer_fixed_s": infer_fixed,
        "infer_per_token_ms": infer_per_token * 1000,
        "infer_overhead_tokens": infer_fixed / infer_per_token,
        "batch": batch,
        "median_real_tokens": statistics.median(real) if real else 0,
        "max_real_tokens": max(real, default=0),
        "rows": rows,
    }


def _inference_ab(base: str, threads: int) -> list[dict[str, Any]]:
    """Texts classified per second in batches of 8 by inference's scorer, one padded pass vs grouped by length."""

    import pandas as pd
    import torch

    from localft.base_models import apply_threads, load_tokenizer, local_model_dir, scoring, use_threads
    from localft.base_models.templates import render_prompt, template_kind
    from localft.inference.precision import compute_dtype

    use_threads(threads)
    apply_threads()
    sst2 = [row["sentence"] for row in dataset_rows("sst2/dev.tsv", 64, delimiter="\t")]
    pool = pd.read_csv(DATASETS / "jigsaw_toxic" / "data_pools" / "train.a.ok.1k.csv")
    jigsaw = pool["comment_text"].astype(str).sample(n=64, random_state=0).tolist()
    model_dir, tokenizer = local_model_dir(base, CACHE), load_tokenizer(base, CACHE)
    pad = tokenizer.pad_token_id or 0
    if base == "minilm-l6":
        from transformers import AutoModelForSequenceClassification

        encoder = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=3, dtype=compute_dtype("cpu")
        )
        encoder.eval()

        def run(texts: list[str]) -> Any:
            return scoring.encoder_logits(encoder, tokenizer, texts, 256, "cpu", pad)

    else:
        from transformers import AutoModelForCausalLM

        causal = AutoModelForCausalLM.from_pretrained(model_dir, dtype=compute_dtype("cpu")).eval()
        kind = template_kind(tokenizer)

        def run(texts: list[str]) -> Any:
            prompts = [render_prompt(tokenizer, [{"role": "user", "content": t}], kind) for t in texts]
            answers = ["positive<|im_end|>", "negative<|im_end|>"]
            rows = [scoring.build_row(tokenizer, prompt, answers) for prompt in prompts]
            with torch.inference_mode():
                return scoring.score_rows(causal, rows, pad, "cpu")

    set_grouping = grouping_switch()
    results = []
    for name, texts in (("SST-2 sentences", sst2), ("Jigsaw comments", jigsaw)):
        times: dict[str, list[float]] = {"one padded pass": [], "by length": []}
        for rep in range(4):  # alternating which goes first
            for mode in list(times) if rep % 2 == 0 else list(reversed(times)):
                set_grouping(mode == "by length")
                started = time.perf_counter()
                for start in range(0, len(texts), 8):
                    run(texts[start : start + 8])
                times[mode].append(time.perf_counter() - started)
        set_grouping(True)
        results.append({"texts": name, **{k: len(texts) / statistics.median(v) for k, v in times.items()}})
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="measured optimizer steps per grouping (0: fits only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="models to run (default: all)")
    args = parser.parse_args([] if argv is None else argv)  # `python -m benchmarks NAME` keeps its own argv
    context = multiprocessing.get_context("spawn")
    for base in [m for m in MODELS if not args.only or m in args.only]:
        with context.Pool(1) as pool:  # its own process: one model's memory and threads at a time
            r = pool.apply(_run_model, (base, args.steps, args.threads))
        shapes = ", ".join(f"{rows}x{width} {t:.2f}s" for rows, width, t in r["shapes"])
        print(f"\n**{r['model']}**: one training pass (forward + backward) at uniform shapes: {shapes}")
        print(
            f"fit: {r['fixed_s']:.3f} s + {r['per_token_ms']:.2f} ms per token: a pass's fixed cost is "
            f"{r['overhead_tokens']:.0f} tokens\n"
        )
        shapes = ", ".join(f"{rows}x{width} {t * 1000:.0f}ms" for rows, width, t in r["infer_shapes"])
        print(f"one inference pass at the same shapes: {shapes}")
        print(
            f"fit: {r['infer_fixed_s'] * 1000:.1f} ms + {r['infer_per_token_ms']:.3f} ms per token: an inference "
            f"pass's fixed cost is {r['infer_overhead_tokens']:.0f} tokens\n"
        )
        with context.Pool(1) as pool:
            ab = pool.apply(_inference_ab, (base, args.threads))
        print("| inference, batches of 8 | one padded pass /s | by length /s |\n|---|---|---|")
        for row in ab:
            print(f"| {row['texts']} | {row['one padded pass']:.1f} | {row['by length']:.1f} |")
        print()
        if not r["rows"]:
            continue
        print(
            f"Jigsaw batches of {r['batch']}: real tokens per batch median {r['median_real_tokens']}, "
            f"max {r['max_real_tokens']}\n"
        )
        print("| grouping | s/step (median) | real tokens/s | tokens computed per real token | passes per step |")
        print("|---|---|---|---|---|")
        for row in r["rows"]:
            print(
                f"| {row['grouping']} | {row['s_per_step']:.2f} | {row['real_tokens_per_s']:.0f} | "
                f"{row['computed_per_real']:.2f} | {row['passes_per_step']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
