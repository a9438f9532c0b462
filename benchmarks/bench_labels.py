"""Label scoring with many labels: the 77 Banking77 intents scored after a query by SmolLM2, as a router does.

    .venv/bin/python -m benchmarks.bench_labels [--prompts 4] [--threads 2]

Times `localft.base_models.scoring.score_rows` (what a fine-tuned classifier's request runs) on the first test
queries, and checks a sample of the scores against a brute-force forward pass per candidate. Prints the tokens the
labels would feed one by one, the prefix-tree nodes actually fed, seconds per prompt and the largest difference.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._harness import LLM, dataset_rows


def main(argv: list[str] | None = None) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from localft.base_models import local_model_dir
    from localft.base_models.scoring import build_row, fed_count, score_rows
    from localft.base_models.templates import render_prompt, template_kind
    from localft.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args([] if argv is None else argv)
    torch.set_num_threads(args.threads)
    rows_in = dataset_rows("banking77/test.csv")
    labels = sorted({row["category"] for row in rows_in})
    queries = [row["text"] for row in rows_in[: args.prompts]]
    folder = local_model_dir(LLM, Settings.from_env().cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    kind = template_kind(tokenizer, "model")
    end = tokenizer.eos_token or ""
    answers = [label + end for label in labels]
    prompts = [render_prompt(tokenizer, [{"role": "user", "content": q}], kind) for q in queries]
    rows = [build_row(tokenizer, prompt, answers) for prompt in prompts]
    score_rows(model, rows[:1], 0, "cpu")  # warm-up
    started = time.perf_counter()
    scores = score_rows(model, rows, 0, "cpu")
    seconds = (time.perf_counter() - started) / len(rows)
    worst = 0.0
    for row, row_scores in zip(rows, scores, strict=True):
        for candidate, score in list(zip(row.candidates, row_scores, strict=True))[::11]:
            with torch.inference_mode():
                logits = model(torch.tensor([row.prompt_ids + candidate])).logits[0].float()
            logprobs = torch.log_softmax(logits, -1)
            start = len(row.prompt_ids) - 1
            exact = sum(float(logprobs[start + j, t]) for j, t in enumerate(candidate))
            worst = max(worst, abs(exact - score))
    one_by_one = sum(len(c) - 1 for c in rows[0].candidates)
    nodes = fed_count(rows[0])
    print(
        f"{len(labels)} labels, fp32: {one_by_one} label tokens one by one, {nodes} prefix-tree nodes fed; "
        f"{seconds:.2f} s per prompt; max |score - brute force| {worst:.5f}"
    )


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
