from pathlib import Path

import pytest

from localft.base_models import AUTO, is_known, list_base_models, local_model_dir, resolve_alias
from localft.errors import ModelError


def test_openai_names_resolve_to_builtin_models(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_alias("gpt-4o-mini-2024-07-18") == AUTO
    assert resolve_alias("davinci-002") == "gemma-3-270m"
    assert resolve_alias("minilm-l6") == "minilm-l6"
    monkeypatch.setenv("LOCALFT_MODEL_ALIASES", "gpt-4o-mini=minilm-l6, router=/models/x")
    assert resolve_alias("gpt-4o-mini") == "minilm-l6"
    assert resolve_alias("router") == "/models/x"


def test_catalog_lists_default_and_opt_in_models() -> None:
    names = [spec.name for spec in list_base_models()]
    assert {"smollm2-135m-instruct", "gemma-3-270m", "minilm-l6", "mpnet-base"} <= set(names)
    default = [spec.name for spec in list_base_models(include_opt_in=False)]
    assert "mpnet-base" in default  # `auto` scores it
    assert "qwen2.5-coder-0.5b-instruct" not in default


def test_auto_and_the_openai_chat_aliases_run_as_the_default_llm_where_nothing_is_chosen() -> None:
    from localft.base_models import DEFAULT_BASE_MODEL, get_spec, runs_as

    assert resolve_alias("gpt-4o-mini-2024-07-18") == AUTO and is_known("auto")
    assert runs_as("gpt-4o-mini-2024-07-18") == runs_as("auto") == DEFAULT_BASE_MODEL
    assert get_spec("auto") is get_spec(DEFAULT_BASE_MODEL)
    assert runs_as("minilm-l6") == "minilm-l6"


def test_local_folder_is_a_base_model(tiny_causal_lm: Path, tmp_path: Path) -> None:
    assert is_known(str(tiny_causal_lm))
    assert local_model_dir(str(tiny_causal_lm), tmp_path) == tiny_causal_lm


def test_unknown_model_error_names_the_choices(tmp_path: Path) -> None:
    assert not is_known("no-such-model")
    with pytest.raises(ModelError, match="smollm2-135m-instruct") as info:
        local_model_dir("no-such-model", tmp_path)
    assert info.value.param == "model"


@pytest.mark.slow
def test_builtin_gguf_model_converts_once_and_loads(tmp_path: Path) -> None:
    from localft.settings import Settings

    cache = Settings.from_env().cache_dir
    folder = local_model_dir("smollm2-135m-instruct", cache)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert local_model_dir("gpt-4o-mini", cache) == folder
