"""Jigsaw toxic comments, multi-label (6 labels), 400 train / 100 validation / 100 test as the tutorial.

The shared copy holds random pools, not the whole Kaggle file: clean comments (`*.ok.*`) and comments with at
least one label (`*.bad.*`). Each split here takes half of each, seeded (42): train and validation from the
`train.a` pools (disjoint), test from the Kaggle test pools `test.a`. Answers are the positive labels joined with
`,` in column order, `none` when no label applies (what `localft prepare --label-cols` writes).

    python -m benchmarks jigsaw
"""

from __future__ import annotations

import pandas as pd

from benchmarks._harness import (
    DATASETS,
    ENCODER,
    LLM,
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

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
SYSTEM = (
    "Label this comment with every category that applies, comma-separated, or 'none': "
    "toxic, severe_toxic, obscene, threat, insult, identity_hate."
)
POOLS = DATASETS / "jigsaw_toxic" / "data_pools"


def answer(row: pd.Series) -> str:
    positive = [label for label in LABELS if int(row[label]) == 1]
    return ",".join(positive) if positive else "none"


def _rows(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(row["comment_text"]), answer(row)) for _, row in frame.iterrows()]


def splits() -> dict[str, list[tuple[str, str]]]:
    ok = pd.read_csv(POOLS / "train.a.ok.1k.csv").sample(frac=1.0, random_state=42)
    bad = pd.read_csv(POOLS / "train.a.bad.1k.csv").sample(frac=1.0, random_state=42)
    test_ok = pd.read_csv(POOLS / "test.a.ok.200.csv").sample(n=50, random_state=42)
    test_bad = pd.read_csv(POOLS / "test.a.bad.200.csv").sample(n=50, random_state=42)
    train = pd.concat([ok.iloc[:200], bad.iloc[:200]]).sample(frac=1.0, random_state=0)
    validation = pd.concat([ok.iloc[200:250], bad.iloc[200:250]]).sample(frac=1.0, random_state=0)
    test = pd.concat([test_ok, test_bad]).sample(frac=1.0, random_state=0)
    return {"train": _rows(train), "validation": _rows(validation), "test": _rows(test)}


def main() -> None:
    with bench_server("jigsaw") as bench:
        data = bench.workdir / "data"
        paths = {name: write_chat_jsonl(data / f"{name}.jsonl", rows, SYSTEM) for name, rows in splits().items()}
        bases = {"llm": LLM, "enc": ENCODER} if llm_enabled() else {"enc": ENCODER}
        attempts = [
            bench.try_fine_tune(base, paths["train"], validation=paths["validation"], suffix=f"jigsaw-{kind}")
            for kind, base in bases.items()
        ]
        testset = testset_from(paths["test"], LABELS, multi_label=True)
        comparison = bench.compare_fine_tunes(
            testset,
            succeeded(attempts),
            zero_shot=[LLM] if llm_enabled() else [],
            train=paths["train"],
            tag="test",
        )
        failures = failures_note(bench)
    per_label = {row.name: row.report.metrics.to_dict() for row in comparison.rows}
    save_results("jigsaw", {"comparison": comparison.to_dict(), "metrics": per_label})
    lines = [
        "### 2. Jigsaw toxic comments (multi-label, 6 labels)",
        "",
        f"Command: `{bench_command('jigsaw')}`. 400 train / 100 validation / 100 test, each half clean and half",
        "with at least one label (the shared copy has only random pools: see the script's docstring). The headline",
        "is micro F1 over the 6 labels; exact match and Hamming loss below. Published tutorial figures for this",
        "split are not given in the brief, so there is no published row.",
        "",
        comparison_table(comparison),
        "",
        "| model | micro F1 | macro F1 | exact match | Hamming loss | " + " | ".join(f"F1 {x}" for x in LABELS) + " |",
        "|---|---|---|---|---|" + "---|" * len(LABELS),
    ]
    for row in comparison.rows:
        m = row.report.metrics.to_dict()
        f1 = " | ".join(f"{m['per_label'][x]['f1']:.2f} ({m['per_label'][x]['support']})" for x in LABELS)
        lines.append(
            f"| `{row.name}` | {m['micro_f1']:.3f} | {m['macro_f1']:.3f} | {m['exact_match']:.3f} | "
            f"{m['hamming_loss']:.3f} | {f1} |"
        )
    lines += ["", "Per-label cells: F1 (gold support in the 100 test comments).", ""]
    publish_section("jigsaw", lines, failures)


if __name__ == "__main__":
    main()
