"""`localft models list --builtin | pull | rm <built-in>`: the base-model cache on this machine (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from localft.base_models.fetch import converted_dir, remove_cached
from localft.cli import main
from localft.errors import ModelError


def test_list_builtin_shows_catalog_and_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCALFT_CACHE_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["models", "list", "--builtin", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["smollm2-135m-instruct"]["family"] == "causal_lm"
    assert rows["smollm2-135m-instruct"]["status"] in {"installed", "not installed"}  # nothing converted here
    assert rows["mpnet-base"]["status"] in {"not installed", "installed", "ready"}  # installed by default now
    assert rows["qwen2.5-coder-0.5b-instruct"]["status"] in {"opt-in", "installed", "ready"}


def test_rm_builtin_deletes_only_the_converted_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCALFT_CACHE_DIR", str(tmp_path))
    copy = converted_dir("gemma-3-270m", tmp_path)
    copy.mkdir(parents=True)
    (copy / "model.safetensors").write_bytes(b"x")
    result = CliRunner().invoke(main, ["models", "rm", "davinci-002"])  # an alias of gemma-3-270m
    assert result.exit_code == 0, result.output
    assert "Deleted the converted copy of davinci-002" in result.output and not copy.exists()
    again = CliRunner().invoke(main, ["models", "rm", "gemma-3-270m"])
    assert again.exit_code == 0 and "no converted copy" in again.output


def test_pull_unknown_model_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["models", "pull", "no-such-model"])
    assert result.exit_code == 1 and "Unknown base model" in result.output
    with pytest.raises(ModelError, match="not a built-in model"):
        remove_cached("no-such-model", Path("/nonexistent"))
