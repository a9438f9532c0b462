"""Does int8 inference keep a fine-tuned classifier's answers? Accuracy and speed per precision, side by side.

    .venv/bin/python -m benchmarks.bench_precision [--datasets airline banking77] [--llm] [--threads 2]

Fine-tunes the built-in encoder (and with `--llm` the built-in LLM) in-process with `auto` hyperparameters, then
answers one held-out test set through `InferenceEngine` once per precision policy (`LOCALFT_INT8`): `off` holds
weights in the machine's float dtype (bf16 where the CPU has it natively, else fp32), `on` runs the linear layers
in int8. Prints accuracy, how many answers differ from the float answers, the largest change of a chosen label's
probability, one-request p50 and 16-thread throughput. The `auto` default was chosen from these figures.

First, a table of the bare base models in each precision the CPU can run (fp32, bf16, int8), side by side in one
run: MiniLM sentence embeddings (agreement: cosine with the fp32 embedding; batches of 32 tweets and single
tweets) and SmolLM2 next-token distributions over chat prompts (agreement: KL divergence from fp32 and how often
the most likely token is the same; one forward pass per prompt).

Datasets: `airline` = the tutorial's 100 balanced training tweets, tested on the next 100 of each class (300);
`banking77` = 10 training queries per intent (770), tested on the first 5 per intent of the official test split (385).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks._harness import ENCODER, LLM, RecordingSink, dataset_rows, write_chat_jsonl
from benchmarks.bench_defaults import airline_split
from benchmarks.bench_inference import throughput

SYSTEMS = {
    "airline": "Classify the sentiment of this airline tweet. Answer with one word: negative, neutral or positive.",
    "banking77": "Route this banking customer query to its intent.",
}


def _banking77() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    def read(name: str, per_intent: int) -> list[tuple[str, str]]:
        taken: dict[str, int] = defaultdict(int)
        rows = []
        for row in dataset_rows(f"banking77/{name}"):
            if taken[row["category"]] < per_intent:
                taken[row["category"]] += 1
                rows.append((row["text"], row["category"]))
        return rows

    return read("train.csv", 10), read("test.csv", 5)


LOADERS = {"airline": lambda: airline_split(held_out_per_class=100), "banking77": _banking77}


def fine_tune(base: str, train: list[tuple[str, str]], system: str, folder: Path) -> Path:
    from localft.training import TrainSpec, run_training

    sink = RecordingSink()
    run_training(TrainSpec(base, write_chat_jsonl(folder / "train.jsonl", train, system), folder / "run"), sink)
    assert sink.checkpoint is not None, "training wrote no checkpoint"
    return sink.checkpoint


def measure(base: str, checkpoint: Path, test: list[tuple[str, str]], system: str, policy: str) -> dict[str, Any]:
    from localft.inference.engine import InferenceEngine
    from localft.inference.types import ChatRequest, ModelArtifact

    engine = InferenceEngine(Path(tempfile.gettempdir()) / "localft-bench-precision-cache", int8=policy)  # type: ignore[arg-type]
    artifact = ModelArtifact("ft", base, checkpoint)

    def ask(text: str) -> Any:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
        return engine.chat(artifact, ChatRequest(messages, temperature=0)).choices[0]

    answers = [ask(text) for text, _ in test]  # also loads the weights before anything is timed
    latencies = []
    for text, _ in test[:40]:
        started = time.perf_counter()
        ask(text)
        latencies.append(time.perf_counter() - started)
    rate = throughput(ask, [text for text, _ in test[:160]], threads=16)
    return {
        "labels": [a.content for a in answers],
        "probs": [(a.label_probs or {}).get(a.content, 0.0) for a in answers],
        "accuracy": sum(a.content == gold for a, (_, gold) in zip(answers, test, strict=True)) / len(test),
        "p50_ms": 1000 * statistics.median(latencies),
        "rate": rate,
        "weights_mib": engine.memory_bytes / 2**20,
    }


def _tweets(n: int) -> list[str]:
    return [row["text"] for row in dataset_rows("twitter_airline_sentiment/Tweets.csv", n)]


def _variants(model: Any) -> list[tuple[str, Any]]:
    """The model in fp32, bf16 and int8 (copies)."""
    import copy

    import torch

    from localft.inference.precision import quantize_linears

    int8 = copy.deepcopy(model)
    quantize_linears(int8)
    return [("fp32", model), ("bf16", copy.deepcopy(model).to(torch.bfloat16)), ("int8", int8)]


def bare_models() -> None:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from localft.base_models import local_model_dir
    from localft.settings import Settings

    cache = Settings.from_env().cache_dir
    texts = _tweets(128)
    print("| base model | weights | agreement with fp32 | batched /s | single p50 ms |")
    print("|---|---|---|---|---|")
    folder = local_model_dir(ENCODER, cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def embed(model: Any, batch: list[str]) -> Any:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**enc).last_hidden_state.float()
        weights = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)

    reference = None
    for name, model in _variants(AutoModel.from_pretrained(folder).eval()):
        vectors = embed(model, texts[:64])
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(-1)
        started = time.perf_counter()
        for s in range(0, 128, 32):
            embed(model, texts[s : s + 32])
        rate = 128 / (time.perf_counter() - started)
        single = []
        for text in texts[:20]:
            started = time.perf_counter()
            embed(model, [text])
            single.append(time.perf_counter() - started)
        agreement = f"cosine mean {cosine.mean():.3f}, min {cosine.min():.3f}"
        print(f"| {ENCODER} | {name} | {agreement} | {rate:.0f} | {1000 * statistics.median(single):.1f} |")
    folder = local_model_dir(LLM, cache)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    system = {"role": "system", "content": SYSTEMS["airline"]}
    prompts = [
        tokenizer.apply_chat_template(
            [system, {"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts[:6]
    ]
    ids = [tokenizer(p, return_tensors="pt").input_ids for p in prompts]
    reference = None
    for name, model in _variants(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()):
        with torch.inference_mode():
            logprobs = [torch.log_softmax(model(input_ids=i).logits[0].float(), -1) for i in ids]
            started = time.perf_counter()
            for i in ids:
                model(input_ids=i, logits_to_keep=1)
            p50 = 1000 * (time.perf_counter() - started) / len(ids)
        reference = logprobs if reference is None else reference
        kl = statistics.mean(
            float((r.exp() * (r - q)).sum(-1).mean()) for r, q in zip(reference, logprobs, strict=True)
        )
        same = statistics.mean(
            float((r.argmax(-1) == q.argmax(-1)).float().mean()) for r, q in zip(reference, logprobs, strict=True)
        )
        print(f"| {LLM} | {name} | KL {kl:.3f} nats, same top token {same:.0%} | | {p50:.1f} |")
    print()


def main(argv: list[str] | None = None) -> None:
    from localft.base_models import use_threads
    from localft.inference.precision import compute_dtype

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(LOADERS), choices=list(LOADERS))
    parser.add_argument("--llm", action="store_true", help="also fine-tune and compare the built-in LLM (slow)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare base-model table")
    args = parser.parse_args([] if argv is None else argv)
    use_threads(args.threads)  # every request thread, not only this one (base_models.apply_threads)
    float_name = str(compute_dtype("cpu")).removeprefix("torch.")
    print(f"float dtype on this CPU: {float_name}; torch threads: {args.threads}\n")
    if not args.no_bare:
        bare_models()
    print(
        "| model | data (train / test) | weights | accuracy | answers changed | max change of p(answer) |"
        " p50 ms | requests/s | weights MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    bases = [ENCODER, LLM] if args.llm else [ENCODER]
    for dataset in args.datasets:
        train, test = LOADERS[dataset]()
        for base in bases:
            with tempfile.TemporaryDirectory() as tmp:
                checkpoint = fine_tune(base, train, SYSTEMS[dataset], Path(tmp))
                exact = measure(base, checkpoint, test, SYSTEMS[dataset], "off")
                quantized = measure(base, checkpoint, test, SYSTEMS[dataset], "on")
            for name, result in (("float (" + float_name + ")", exact), ("int8", quantized)):
                changed = sum(a != b for a, b in zip(result["labels"], exact["labels"], strict=True))
                drift = max(abs(a - b) for a, b in zip(result["probs"], exact["probs"], strict=True))
                print(
                    f"| {base} | {dataset} ({len(train)} / {len(test)}) | {name} | {result['accuracy']:.1%} | "
                    f"{changed} | {drift:.3f} | {result['p50_ms']:.1f} | {result['rate']:.0f} | "
                    f"{result['weights_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
