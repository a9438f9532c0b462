"""`localft jobs plot` on a server without a worker, the jobs' metrics events written to the store as a worker's
sink writes them; and `jobs create --model` no longer offers ft: models as a base."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.jobs.store import Store
from localft.settings import Settings


@pytest.fixture
def workerless(settings: Settings) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(replace(settings, embedded_worker=False)) as server:
        yield server


def new_job(server: EmbeddedServer, folder: Path, suffix: str) -> str:
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
    path = folder / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": f"text {i}"}, {"role": "assistant", "content": "ab"[i % 2]}]}
        for i in range(10)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    file_id = client.files.create(file=path.open("rb"), purpose="fine-tune").id
    return client.fine_tuning.jobs.create(model="minilm-l6", training_file=file_id, suffix=suffix).id


def test_plot_writes_the_curves_of_several_jobs(workerless: EmbeddedServer, settings: Settings, tmp_path: Path) -> None:
    ids = [new_job(workerless, tmp_path, suffix) for suffix in ("one", "two")]
    store = Store.open(settings.db_url)
    try:
        for job_id in ids:
            for step in range(1, 5):
                data = {"step": step, "total_steps": 4, "train_loss": 1 / step}
                if step == 4:
                    data |= {"full_valid_loss": 0.3, "full_valid_accuracy": 0.8, "full_valid_macro_f1": 0.75}
                store.add_event(job_id, f"Step {step}/4", type="metrics", data=data)
    finally:
        store.close()
    out = tmp_path / "figures" / "curves.png"
    result = CliRunner().invoke(main, ["jobs", "plot", *ids, "-o", str(out), "--base-url", workerless.base_url])
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote {out} (2 jobs)\n"
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_of_jobs_without_steps_is_a_clean_error(workerless: EmbeddedServer, tmp_path: Path) -> None:
    job_id = new_job(workerless, tmp_path, "idle")
    args = ["jobs", "plot", job_id, "-o", str(tmp_path / "c.png"), "--base-url", workerless.base_url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "nothing to plot" in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(main, ["jobs", "plot", "ftjob-nope", "--base-url", workerless.base_url])
    assert missing.exit_code == 1 and "ftjob-nope" in missing.output


def test_create_help_offers_base_models_only() -> None:
    help_text = " ".join(CliRunner().invoke(main, ["jobs", "create", "--help"]).output.split())
    assert "not an ft: model: start from its base" in help_text
    assert "or an ft: model" not in help_text
