"""An intent router: Banking77 (77 intents) as the stand-in for the tutorial's HR router, with 10 and 50
training examples per intent.

Training examples are the first N per intent of `train.csv` after a seeded shuffle (seed 42; Banking77 has 35 to
187 per intent, so a few intents have fewer than 50); the test set is
the first `LOCALFT_BENCH_ROUTER_TEST` (default 5) per intent of the official `test.csv`, the same for every model.
The prompts carry no label list (77 labels would multiply every training step's length), so the zero-shot base
model (opt-in, see below) is given one: localft's zero-shot system prompt with all 77 intents.

    python -m benchmarks router            LOCALFT_BENCH_ROUTER_SHOTS=10 to run one size only (the other sizes'
                                           tables are kept from the last run's benchmarks/results/router.json),
                                           LOCALFT_BENCH_ROUTER_LLM_SHOTS=10 to fine-tune the LLM at 10 only
"""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from benchmarks._harness import (
    DATASETS,
    ENCODER,
    LLM,
    RESULTS,
    bench_command,
    bench_server,
    comparison_table,
    failures_note,
    llm_enabled,
    publish_section,
    save_results,
    succeeded,
    testset_from,
    write_chat_jsonl,
)

BANKING = DATASETS / "banking77"


def _per_intent(frame: pd.DataFrame, n: int, skip: int = 0) -> list[tuple[str, str]]:
    picked = frame.groupby("category", sort=True).nth(list(range(skip, skip + n)))
    return list(zip(picked["text"].astype(str), picked["category"].astype(str), strict=True))


def saved_runs(n_test: int) -> dict[str, Any]:
    """The last run's per-size results, when it used the same test set (the tables of sizes not run this time)."""
    path = RESULTS / "router.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text(encoding="utf-8"))
    return dict(saved["runs"]) if saved.get("n_test_per_intent") == n_test else {}


def main() -> None:
    shots = [int(x) for x in os.environ.get("LOCALFT_BENCH_ROUTER_SHOTS", "10,50").split(",")]
    n_test = int(os.environ.get("LOCALFT_BENCH_ROUTER_TEST", "5"))
    tuned_shots = os.environ.get("LOCALFT_BENCH_ROUTER_FINETUNE_SHOTS")
    finetune = [int(x) for x in tuned_shots.split(",")] if tuned_shots else shots
    # LOCALFT_BENCH_ROUTER_LLM_SHOTS=10: the LLM is fine-tuned at 10 per intent only (the encoder at every size).
    llm_sizes = os.environ.get("LOCALFT_BENCH_ROUTER_LLM_SHOTS")
    llm_shots = [int(x) for x in llm_sizes.split(",")] if llm_sizes else shots
    train_frame = pd.read_csv(BANKING / "train.csv").sample(frac=1.0, random_state=42)
    test_frame = pd.read_csv(BANKING / "test.csv")
    labels = sorted(test_frame["category"].unique())
    results: dict[str, Any] = {"n_test_per_intent": n_test, "runs": saved_runs(n_test)}
    kept = sorted(int(n) for n in results["runs"] if int(n) not in shots)
    tables = {n: comparison_table(results["runs"][str(n)]) for n in kept}
    with bench_server("router") as bench:
        data = bench.workdir / "data"
        test_path = write_chat_jsonl(data / f"test-{n_test}.jsonl", _per_intent(test_frame, n_test), None)
        testset = testset_from(test_path, labels)
        for n in shots:
            train_rows = _per_intent(train_frame, n)
            train_path = write_chat_jsonl(data / f"train-{n}.jsonl", train_rows, None)
            # Encoder jobs get a validation file for their epoch-end metrics: the next training query of each
            # intent that has one left.
            valid_path = write_chat_jsonl(data / f"validation-{n}.jsonl", _per_intent(train_frame, 1, skip=n), None)
            # One epoch at 50 per intent (3,850 examples) keeps the LLM within this benchmark's budget.
            hp = {"n_epochs": 1} if n >= 50 else None
            attempts = []
            if n in finetune:  # LOCALFT_BENCH_ROUTER_FINETUNE_SHOTS=10: fine-tune at 10 per intent only
                attempts.append(bench.try_fine_tune(ENCODER, train_path, suffix=f"bank{n}-enc", validation=valid_path))
                if llm_enabled() and n in llm_shots:
                    attempts.insert(0, bench.try_fine_tune(LLM, train_path, suffix=f"bank{n}-llm", hyperparameters=hp))
            tunes = succeeded(attempts)
            # Zero-shot generation with 77 intents in the prompt costs several CPU seconds per query on this
            # machine: opt-in (LOCALFT_BENCH_ROUTER_ZERO_SHOT=1), asked with the first training size only.
            asked = os.environ.get("LOCALFT_BENCH_ROUTER_ZERO_SHOT") == "1" and llm_enabled()
            zero_shot = [LLM] if n == shots[0] and asked else []
            comparison = bench.compare_fine_tunes(
                testset, tunes, zero_shot=zero_shot, train=train_path, tag=f"shots-{n}"
            )
            results["runs"][str(n)] = {
                "n_train": len(train_rows),
                "hyperparameters": {t.model_id: t.hyperparameters for t in tunes},
                **comparison.to_dict(),
            }
            tables[n] = comparison_table(comparison)
        failures = failures_note(bench)
    save_results("router", results)
    lines = [
        "### 3. Intent router (Banking77, 77 intents)",
        "",
        f"Command: `{bench_command('router')}`. Banking77 stands in for the tutorial's HR router. Test set:",
        f"{n_test} queries per intent from the official test split ({n_test * len(labels)} queries), the same for",
        "every model. Fine-tuned models see the bare query. The zero-shot base model (a system prompt listing the",
        "77 intents) is only in the table when it was run (`LOCALFT_BENCH_ROUTER_ZERO_SHOT=1`): it costs several",
        "CPU seconds per query here. The published HR-router figures are not given in the brief: no published row.",
        "Encoder jobs get a validation file of one unused training query per intent, for their epoch-end metrics.",
        "",
    ]
    for n, table in sorted(tables.items()):
        size = results["runs"][str(n)]["n_train"]
        lines += [f"**{n} training examples per intent** ({size} examples; fewer where an intent has fewer):"]
        lines += ["", table, ""]
        if n in kept:
            lines += [f"(Kept from an earlier run: {n} per intent was not run this time.)", ""]
        elif n not in finetune:
            lines += [f"Fine-tuned rows at {n} per intent: not run (`LOCALFT_BENCH_ROUTER_FINETUNE_SHOTS`).", ""]
        elif llm_enabled() and n not in llm_shots:
            lines += [f"Fine-tuned LLM at {n} per intent: not run (`LOCALFT_BENCH_ROUTER_LLM_SHOTS`).", ""]
    publish_section("router", lines, failures)


if __name__ == "__main__":
    main()
