"""`localft train` end to end: real dataset, real server (live or embedded), real training of a tiny model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner, Result

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.cli.render import EXIT_INVALID_DATA, EXIT_JOB_CANCELLED
from localft.settings import Settings

TWEETS = "twitter_airline_sentiment/Tweets.csv"


def prepare_args(datasets: Path, per_class: int = 5, split: str = "train=0.75,test=0.25") -> list[str]:
    return [
        str(datasets / TWEETS),
        "--text-col",
        "text",
        "--label-col",
        "airline_sentiment",
        "--per-class",
        str(per_class),
        "--sample",
        "first",
        "--split",
        split,
    ]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_failed_validation_stops_before_uploading(live_server: EmbeddedServer, datasets: Path, tmp_path: Path) -> None:
    args = ["train", *prepare_args(datasets, per_class=2), "-o", str(tmp_path / "prepared")]
    result = CliRunner().invoke(main, [*args, "--base-url", live_server.base_url])
    assert result.exit_code == EXIT_INVALID_DATA, result.output
    assert "at least 10" in result.output  # the validation report, with OpenAI's minimum
    assert "failed validation" in result.output
    client = openai.OpenAI(base_url=live_server.base_url, api_key="x")
    assert client.files.list().data == []  # nothing was uploaded, no job created
    assert client.fine_tuning.jobs.list().data == []


def test_train_against_a_live_server(
    live_server: EmbeddedServer, datasets: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    args = ["train", *prepare_args(datasets), "--model", str(tiny_causal_lm), "--n-epochs", "2", "--batch-size", "4"]
    args += ["--suffix", "tweets", "-o", str(tmp_path / "prepared"), "--base-url", live_server.base_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Prepared 11 train, 4 test examples" in result.output
    model = next(line.split(": ", 1)[1] for line in result.output.splitlines() if line.startswith("Fine-tuned model"))
    assert model.startswith("ft:") and ":tweets:" in model
    assert "Step " in result.output  # progress arrived while training
    assert f'model="{model}"' in result.output  # the snippet
    assert "accuracy" in result.output.lower()  # the held-out evaluation
    # The loss curves, saved beside the prepared data when the job ended.
    curves = tmp_path / "prepared" / "curves.png"
    assert f"Training curves: {curves}" in result.output
    assert curves.read_bytes()[:4] == b"\x89PNG"

    client = openai.OpenAI(base_url=live_server.base_url, api_key="x")
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "@united my bag is lost"}], temperature=0
    )
    assert reply.choices[0].message.content in {"negative", "neutral", "positive"}
    _check_verbs_on_a_trained_model(live_server, model, tmp_path)


def _check_verbs_on_a_trained_model(server: EmbeddedServer, model: str, folder: Path) -> None:
    """chat --probs, the result file download (base64 decoded), checkpoints and models rm on a real job."""

    def cli(*args: str) -> Result:
        result = CliRunner().invoke(main, [*args, "--base-url", server.base_url])
        assert result.exit_code == 0, result.output
        return result

    probs = cli("chat", model, "@united my bag is lost", "--probs").stdout.splitlines()
    answer, header, *rows = probs
    assert header.split() == ["LABEL", "PROBABILITY"]
    assert answer == rows[0].split()[0]  # the answer is the most probable label
    assert {row.split()[0] for row in rows} == {"negative", "neutral", "positive"}
    assert abs(sum(float(row.split()[1]) for row in rows) - 1.0) < 0.01

    job = json.loads(cli("jobs", "list", "--json").stdout)[0]
    assert job["fine_tuned_model"] == model
    results_csv = cli("files", "download", job["result_files"][0]).stdout
    assert results_csv.startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy")
    plotted = folder / "plots" / "both.png"  # in a folder that does not exist yet
    assert cli("jobs", "plot", job["id"], job["id"], "-o", str(plotted)).stdout == f"Wrote {plotted} (2 jobs)\n"
    assert plotted.read_bytes()[:4] == b"\x89PNG"
    checkpoints = json.loads(cli("jobs", "checkpoints", job["id"], "--json").stdout)
    assert checkpoints and all(c["fine_tuned_model_checkpoint"].startswith(model) for c in checkpoints)
    assert cli("models", "rm", model).stdout.strip() == f"Deleted {model}"
    assert model not in [m["id"] for m in json.loads(cli("models", "list", "--json").stdout)]


def test_train_with_no_server_running_starts_an_embedded_one(
    datasets: Path, tiny_causal_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.delenv("LOCALFT_BASE_URL", raising=False)
    # The default URL must have no server behind it, whatever else runs on this machine.
    monkeypatch.setattr("localft.client.DEFAULT_BASE_URL", _closed_port_url())
    args = ["train", *prepare_args(datasets), "--model", str(tiny_causal_lm), "--n-epochs", "1", "--batch-size", "4"]
    args.append("--json")
    result = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "prepared")])
    assert result.exit_code == 0, result.stderr
    assert "running an embedded one" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["fine_tuned_model"].startswith("ft:")
    assert summary["evaluation"]["n"] == 4

    # The model was stored in LOCALFT_HOME: a new server on the same folder answers with it.
    with EmbeddedServer(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")
        assert summary["fine_tuned_model"] in [m.id for m in client.models.list().data]
        reply = client.chat.completions.create(
            model=summary["fine_tuned_model"], messages=[{"role": "user", "content": "thanks!"}], temperature=0
        )
        assert reply.choices[0].message.content in {"negative", "neutral", "positive"}


def _start_train(server: EmbeddedServer, datasets: Path, model: Path, tmp_path: Path) -> subprocess.Popen[str]:
    args = ["train", *prepare_args(datasets, per_class=20), "--model", str(model), "--n-epochs", "50"]
    args += ["--batch-size", "1", "-o", str(tmp_path / "prepared"), "--base-url", server.base_url, "--no-eval"]
    return subprocess.Popen(
        [sys.executable, "-m", "localft", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A test run started in the background (`make test &`) inherits SIGINT ignored, and Python then leaves
        # it ignored: give the child the default disposition so Ctrl-C reaches it as it would in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_step(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """Read stderr until the job reports a training step; return the job id and the lines read."""
    assert proc.stderr is not None
    lines: list[str] = []
    job_id = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Created ftjob-"):
            job_id = line.split()[1]
        if job_id and line.startswith("Step "):
            return job_id, lines
    raise AssertionError("no training step seen:\n" + "".join(lines))


def test_ctrl_c_asks_and_cancels_the_job(
    live_server: EmbeddedServer, datasets: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    proc = _start_train(live_server, datasets, tiny_causal_lm, tmp_path)
    try:
        job_id, _ = _wait_for_step(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(input="y\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_JOB_CANCELLED, err
    assert f"Cancel {job_id}?" in err
    client = openai.OpenAI(base_url=live_server.base_url, api_key="x")
    deadline = time.monotonic() + 30
    while client.fine_tuning.jobs.retrieve(job_id).status != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"


def test_a_job_cancelled_elsewhere_ends_train_with_its_exit_code(
    live_server: EmbeddedServer, datasets: Path, tiny_causal_lm: Path, tmp_path: Path
) -> None:
    proc = _start_train(live_server, datasets, tiny_causal_lm, tmp_path)
    try:
        job_id, _ = _wait_for_step(proc)
        cancelled = CliRunner().invoke(main, ["jobs", "cancel", job_id, "--base-url", live_server.base_url])
        assert cancelled.exit_code == 0, cancelled.output
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_JOB_CANCELLED, err
    assert f"Job {job_id} was cancelled." in err


@pytest.mark.slow
def test_train_a_built_in_model_on_airline_tweets(live_server: EmbeddedServer, datasets: Path, tmp_path: Path) -> None:
    """The README's first walk-through, smaller: SmolLM2 on 30 balanced tweets, scored on 30 held-out ones."""
    args = ["train", *prepare_args(datasets, 20, "train=0.5,test=0.5"), "--model", "smollm2-135m-instruct"]
    args += ["--n-epochs", "1", "-o", str(tmp_path / "airline"), "--base-url", live_server.base_url]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fine_tuned_model"].startswith("ft:smollm2-135m-instruct:")
    assert summary["evaluation"]["n"] == 30
    assert 0.0 <= summary["evaluation"]["accuracy"] <= 1.0
    reply = openai.OpenAI(base_url=live_server.base_url, api_key="x").chat.completions.create(
        model=summary["fine_tuned_model"], messages=[{"role": "user", "content": "@united thank you!"}], temperature=0
    )
    assert reply.choices[0].message.content in {"negative", "neutral", "positive"}


def test_prepared_jsonl_is_validated_as_is(live_server: EmbeddedServer, tmp_path: Path) -> None:
    """Without --text-col the input is taken as prepared chat JSONL; here it has too few examples."""
    data = tmp_path / "small.jsonl"
    lines = [
        {"messages": [{"role": "user", "content": f"tweet {i}"}, {"role": "assistant", "content": "neutral"}]}
        for i in range(5)
    ]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = CliRunner().invoke(main, ["train", str(data), "--model", "minilm-l6", "--base-url", live_server.base_url])
    assert result.exit_code == EXIT_INVALID_DATA, result.output
    assert f"The train file {data} failed validation" in result.output
