from pathlib import Path

import pytest
from click.testing import CliRunner

from localft import ids
from localft.cli import main
from localft.errors import InvalidRequestError
from localft.settings import Settings
from localft.training.hparams import Hyperparameters


def test_settings_read_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOCALFT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("LOCALFT_API_KEYS", "a, b")
    monkeypatch.setenv("LOCALFT_PORT", "9001")
    s = Settings.from_env()
    assert s.home == tmp_path / "h"
    assert s.api_keys == ("a", "b")
    assert s.port == 9001
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("h/localft.db")
    assert Settings.from_env(port=1234).port == 1234
    assert s.threads == 0


@pytest.mark.parametrize(
    "variable, unknown, field", [("LOCALFT_COMPILE", "always", "compile_layers"), ("LOCALFT_INT8", "fast", "int8")]
)
def test_an_unknown_policy_is_refused_with_the_variable_name(
    variable: str, unknown: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, unknown)
    with pytest.raises(ValueError, match=f"{variable} must be one of auto, on, off"):
        Settings.from_env()
    monkeypatch.setenv(variable, "off")
    assert getattr(Settings.from_env(), field) == "off"


def test_threads_setting_sets_torch_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from localft.base_models import use_threads

    monkeypatch.setenv("LOCALFT_THREADS", "1")
    before = torch.get_num_threads()
    try:
        use_threads(Settings.from_env().threads)
        assert torch.get_num_threads() == 1
        use_threads(0)  # 0 leaves the count alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_ids_have_openai_prefixes() -> None:
    assert ids.file_id().startswith("file-")
    assert ids.job_id().startswith("ftjob-")
    assert ids.checkpoint_id().startswith("ftckpt_")
    assert ids.file_id() != ids.file_id()


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ({"n_epochs": 0}, "hyperparameters.n_epochs"),
        ({"batch_size": 257}, "hyperparameters.batch_size"),
        ({"learning_rate_multiplier": -1}, "hyperparameters.learning_rate_multiplier"),
        ({"n_epochs": True}, "hyperparameters.n_epochs"),
        ({"epochs": 3}, "hyperparameters.epochs"),
    ],
)
def test_bad_hyperparameters_name_the_field(raw: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Hyperparameters.from_dict(raw)
    assert info.value.param == param


def test_hyperparameters_accept_auto_and_values() -> None:
    hp = Hyperparameters.from_dict({"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 0.5})
    assert hp.to_dict() == {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": 0.5}


def test_cli_help_lists_every_noun() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "localft" in result.output
