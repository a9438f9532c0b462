"""The legacy `openai==0.28.1` SDK (installed in .venv-legacy by `make setup`) drives the server unmodified."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localft.api.server import EmbeddedServer

REPO = Path(__file__).resolve().parents[2]
LEGACY = REPO / ".venv-legacy"
SCRIPTS = Path(__file__).resolve().parent / "legacy"


def _run_legacy(script: str, *args: str) -> dict[str, object]:
    if not (LEGACY / "openai" / "version.py").is_file():
        pytest.skip(f"openai==0.28.1 is not installed in {LEGACY} (run `make setup`)")
    env = {**os.environ, "PYTHONPATH": str(LEGACY)}
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_legacy_tutorial_calls(idle_server: EmbeddedServer, train_file: Path, tiny_causal_lm: Path) -> None:
    out = _run_legacy("tutorial_calls.py", idle_server.base_url, str(train_file), str(tiny_causal_lm))
    assert out["version"] == "0.28.1"
    file = out["file"]
    assert isinstance(file, dict)
    # The legacy SDK sends the name "file"; the object comes back as a typed openai.File.
    assert (file["object"], file["filename"], file["type"]) == ("file", "file", "File")
    assert out["download_matches"] is True
    assert out["file_list_ids"] == [file["id"]]
    job = out["job"]
    assert isinstance(job, dict)
    assert (job["object"], job["type"]) == ("fine_tuning.job", "FineTuningJob")
    assert job["status"] in ("validating_files", "queued")
    assert out["retrieved_status"] == "queued"
    first_page = out["list_first_page"]
    assert isinstance(first_page, dict) and first_page["has_more"] is True and len(first_page["ids"]) == 1
    assert out["list_all_ids"] == [*first_page["ids"], job["id"]]
    assert out["events"] == [
        "Files validated, moving job to queued state",
        f"Validating training file: {file['id']}",
        f"Created fine-tuning job: {job['id']}",
    ]
    assert out["cancelled_status"] == "cancelled"
    assert "smollm2-135m-instruct" in out["model_ids"]  # type: ignore[operator]
    delete_error = out["delete_base_error"]
    assert isinstance(delete_error, dict)
    assert (delete_error["http_status"], delete_error["code"]) == (400, "model_not_deletable")
    assert out["missing_file_error"] == {"http_status": 404, "code": "file_not_found"}
    chat = out["chat"]
    assert isinstance(chat, dict)
    assert (chat["object"], chat["content_type"]) == ("chat.completion", "str")
    assert chat["finish_reason"] in ("stop", "length") and int(chat["total_tokens"]) > 0


def test_legacy_fine_tune_answer_delete(live_server: EmbeddedServer, train_file: Path, tiny_causal_lm: Path) -> None:
    out = _run_legacy("tutorial_finetune.py", live_server.base_url, str(train_file), str(tiny_causal_lm))
    assert out["status"] == "succeeded", out["error"]
    model = out["fine_tuned_model"]
    assert isinstance(model, str) and model.startswith(f"ft:{tiny_causal_lm.name}:localft::")
    assert str(out["result_header"]).startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy")
    assert out["answer"] in ("positive", "negative")
    assert out["deleted"] == {"id": model, "deleted": True}
    assert model not in out["models_after_delete"]  # type: ignore[operator]
