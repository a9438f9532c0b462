"""`localft prepare` / `localft validate` through click, as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from localft.cli import main
from localft.cli.data import optional_prepare_options, prepare_options
from localft.data.prepare import PrepareOptions

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "data"
LEGAL = str(ASSETS / "legal_cases.csv")


def test_prepare_legal_template_in_one_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "prepare",
            LEGAL,
            "--template",
            r"Case Title: {case_title}\n\nCase Text: {case_text}",
            "--label-col",
            "case_outcome",
            "--assistant-prefix",
            "Case Outcome: ",
            "--split",
            "train=0.8,test=0.2",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Read 30 rows from legal_cases.csv; kept 30 examples (chat, single-label, 5 labels)." in result.output
    assert "rows              24     6     30" in result.output
    first = json.loads((tmp_path / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0]["content"].startswith("Case Title: ")
    assert "\n\nCase Text: " in first["messages"][0]["content"]  # the typed \n became a newline
    assert first["messages"][1]["content"].startswith("Case Outcome: ")


def test_prepare_reports_dropped_rows_and_json(tmp_path: Path) -> None:
    args = ["prepare", str(ASSETS / "dirty.csv"), "--text-col", "text", "--label-col", "label", "-o", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Dropped 4 rows:" in result.output
    assert "empty text      2  3, 7" in result.output
    assert "empty label     2  6, 9" in result.output
    data = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert data["dropped"] == {"empty text": 2, "empty label": 2} and data["rows_out"] == 4


def test_prepare_missing_column_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["prepare", LEGAL, "--text-col", "body", "--label-col", "case_outcome"])
    assert result.exit_code == 2
    assert "column 'body' (from --text-col) is not in legal_cases.csv; its columns are: case_id, case_outcome" in (
        result.output
    )
    result = CliRunner().invoke(main, ["prepare", LEGAL, "--text-col", "case_text", "--split", "train=x"])
    assert result.exit_code == 2 and "is not a number" in result.output


def test_validate_ok_and_failing_exit_codes() -> None:
    ok = CliRunner().invoke(main, ["validate", str(ASSETS / "valid_chat.jsonl")])
    assert ok.exit_code == 0, ok.output
    assert 'n_epochs "auto" = 9' in ok.output and "OK: ready for fine-tuning." in ok.output
    bad = CliRunner().invoke(main, ["validate", str(ASSETS / "invalid_json.jsonl")])
    assert bad.exit_code == 3
    assert "line 3: [invalid_json] invalid JSON: Expecting ',' delimiter at column 49" in bad.output
    assert "fix: write each example as one complete JSON object on a single line" in bad.output
    data = json.loads(CliRunner().invoke(main, ["validate", str(ASSETS / "too_few_examples.jsonl"), "--json"]).output)
    assert data["ok"] is False and data["errors"][0]["code"] == "invalid_n_examples"


def test_validate_counts_tokens_with_the_models_tokenizer(tiny_causal_lm: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    path = ASSETS / "valid_chat.jsonl"
    result = CliRunner().invoke(main, ["validate", str(path), "--model", str(tiny_causal_lm), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    first = json.loads(path.read_text().splitlines()[0])
    expected = 3 + sum(3 + len(tokenizer.encode(m["content"], add_special_tokens=False)) for m in first["messages"])
    assert data["tokenizer"] == str(tiny_causal_lm)
    assert data["max_tokens"] == 512  # the tiny model's max_position_embeddings
    assert data["tokens_per_example"]["min"] <= expected <= data["tokens_per_example"]["max"]
    approx = json.loads(CliRunner().invoke(main, ["validate", str(path), "--json"]).output)
    assert approx["tokens_per_example"] != data["tokens_per_example"]  # the byte-level tokenizer differs from chars/4


def test_validate_reports_the_epochs_of_the_models_family(tiny_causal_lm: Path, tiny_encoder: Path) -> None:
    path = str(ASSETS / "valid_chat.jsonl")  # 11 examples: OpenAI's rule gives 100 // 11 = 9 epochs
    llm = CliRunner().invoke(main, ["validate", path, "--model", str(tiny_causal_lm)])
    assert 'n_epochs "auto" = 9 (OpenAI\'s rule)' in llm.output, llm.output
    encoder = CliRunner().invoke(main, ["validate", path, "--model", str(tiny_encoder), "--json"])
    data = json.loads(encoder.output)
    # batch 1 (an 11-example file), so 11 steps an epoch: 80 steps take 8 epochs
    assert data["n_epochs"] == 8
    assert data["n_epochs_rule"] == "encoders': 80 optimizer steps, within 1-10 epochs"
    # The limit is what the encoder's jobs cut examples to (256), or the max_length a job will ask for, within the
    # model's 512 positions.
    assert data["max_tokens"] == 256
    for asked, limit in [("400", 400), ("2000", 512)]:
        longer = CliRunner().invoke(
            main, ["validate", path, "--model", str(tiny_encoder), "--max-tokens", asked, "--json"]
        )
        assert json.loads(longer.output)["max_tokens"] == limit


def test_validate_unknown_model_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["validate", str(ASSETS / "valid_chat.jsonl"), "--model", "no-such-model"])
    assert result.exit_code == 1 and "Unknown base model 'no-such-model'" in result.output


def test_prepare_options_is_reusable_by_other_commands() -> None:
    seen: list[PrepareOptions] = []

    @click.command()
    @click.argument("path")
    @prepare_options
    def train(path: str, prepare_opts: PrepareOptions) -> None:
        seen.append(prepare_opts)

    result = CliRunner().invoke(
        train,
        ["x.csv", "--text-col", "t", "--label-cols", "a,b", "--none-label", "clean", "--split", "train=0.9,test=0.1"],
    )
    assert result.exit_code == 0, result.output
    assert seen[0].label_columns == ("a", "b") and seen[0].none_label == "clean"
    assert seen[0].splits == (("train", 0.9), ("test", 0.1))


def test_optional_prepare_options_reads_jsonl_without_text_col_or_template() -> None:
    seen: list[PrepareOptions | None] = []

    @click.command()
    @click.argument("path")
    @optional_prepare_options
    @click.option("--model")
    def train(path: str, prepare_opts: PrepareOptions | None, model: str | None) -> None:
        seen.append(prepare_opts)

    # JSONL: the table flags are not checked (an unparsable --split is no error) and not passed on.
    jsonl = CliRunner().invoke(train, ["x.jsonl", "--split", "nonsense", "--model", "m"])
    assert jsonl.exit_code == 0, jsonl.output
    table = CliRunner().invoke(train, ["x.csv", "--template", "{a}", "--label-col", "y", "--split", "train=.5,test=.5"])
    assert table.exit_code == 0, table.output
    assert seen[0] is None
    assert seen[1] is not None and seen[1].template == "{a}" and seen[1].splits == (("train", 0.5), ("test", 0.5))
    bad = CliRunner().invoke(train, ["x.csv", "--text-col", "t", "--split", "nonsense"])
    assert bad.exit_code == 2 and "--split" in bad.output
