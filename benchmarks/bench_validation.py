"""Epoch-end validation speed of an LLM classifier: the loss pass and the label scoring of every example.

    .venv/bin/python -m benchmarks.bench_validation [--examples 150] [--threads 2]

Builds the engine's `CausalLearner` (SmolLM2-135M-Instruct with a fresh LoRA adapter) and times one `evaluate`
over the first airline tweets as chat examples, exactly what a fine-tuning job runs at each epoch end when it has
a validation file. Prints the seconds and the classification metrics (an untrained adapter: near chance).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._harness import LLM, dataset_rows, write_chat_jsonl

SYSTEM = "Classify the sentiment of this airline tweet: negative, neutral, positive."


def main(argv: list[str] | None = None) -> None:
    import torch

    from localft.base_models import load_tokenizer, local_model_dir
    from localft.base_models.templates import template_kind
    from localft.settings import Settings
    from localft.training.dataset import ChatEncoder, read_examples
    from localft.training.lora_causal import CausalLearner
    from localft.training.task import detect_task

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args([] if argv is None else argv)
    torch.set_num_threads(args.threads)
    tweets = dataset_rows("twitter_airline_sentiment/Tweets.csv", args.examples)
    rows = [(row["text"], row["airline_sentiment"]) for row in tweets]
    with tempfile.TemporaryDirectory() as tmp:
        examples = read_examples(write_chat_jsonl(Path(tmp) / "validation.jsonl", rows, SYSTEM))
    folder = local_model_dir(LLM, Settings.from_env().cache_dir)
    tokenizer = load_tokenizer(LLM)
    task = detect_task([example.answer for example in examples])
    learner = CausalLearner(folder, tokenizer, ChatEncoder(tokenizer, template_kind(tokenizer), 512), task, "cpu")
    items = learner.make_items(examples)
    learner.evaluate(items[:8], classify=True)  # warm-up
    started = time.perf_counter()
    evaluation = learner.evaluate(items, classify=True)
    seconds = time.perf_counter() - started
    print(f"validation of {len(items)} examples (loss + label scoring): {seconds:.1f} s; {evaluation.classification}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
