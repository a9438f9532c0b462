"""Shared fixtures.

Tiers:
    make test-fast            unit + API tests with tiny models built from configs (the default `pytest`)
    pytest -m slow            real built-in models and the shared datasets (CI runs this tier too, via `make test`)
    pytest -m gpu             needs CUDA; skipped without it

Every test gets its own LOCALFT_HOME under tmp_path, so no test touches ./localft-data.
"""

from __future__ import annotations

import os
import secrets
import string
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from localft.settings import Settings

if TYPE_CHECKING:
    from localft.api.server import EmbeddedServer

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "assets"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
TEST_MODEL_CACHE = REPO / ".localft-test-cache"
PG_URL = os.environ.get("LOCALFT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def localft_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "localft-home"
    monkeypatch.setenv("LOCALFT_HOME", str(home))
    # Converted base-model weights are shared by all tests (converting SmolLM2's GGUF takes ~30 s).
    monkeypatch.setenv("LOCALFT_CACHE_DIR", str(TEST_MODEL_CACHE))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    yield home


@pytest.fixture
def settings(localft_home: Path) -> Settings:
    s = Settings.from_env(home=localft_home)
    s.ensure_dirs()
    return s


@pytest.fixture
def datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


# --- Tiny models, built from configs in seconds: no downloads, real transformers classes. ---------------------

_TINY_CORPUS = [
    "the flight was great thanks",
    "my bag was lost again",
    "a neutral question about the gate",
    "positive negative neutral none",
    "classify the sentiment of this tweet",
    "system user assistant label answer",
]
# ChatML, the template SmolLM2 uses, so tiny models exercise the same code path as the real default model.
_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_causal_lm(path: Path) -> Path:
    """A 2-layer, 32-dim Llama with a byte-level BPE tokenizer and a ChatML chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_TINY_CORPUS * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = _CHATML
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_encoder(path: Path) -> Path:
    """A 2-layer, 32-dim BERT with a WordPiece vocabulary covering the tiny corpus and single letters."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    words = sorted({w for line in _TINY_CORPUS for w in line.split()})
    letters = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters), *words]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 takes the vocabulary as `vocab` (a path or a dict); `vocab_file` is silently ignored.
    tokenizer = BertTokenizerFast(vocab=str(path / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local Hugging Face folder usable anywhere a base model name is (`model=str(tiny_causal_lm)`)."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local Hugging Face encoder folder (BERT-shaped, like MiniLM) usable as a base model."""
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


# --- A live server: the real app, database and embedded worker on a free loopback port. ----------------------


@pytest.fixture
def live_server(settings: Settings) -> Iterator[EmbeddedServer]:
    """`localft.api.server.EmbeddedServer` on this test's data folder; `.base_url` goes to `openai.OpenAI`.

    The worker lease is short so tests that kill a worker see the job taken over in seconds.
    """
    from localft.api.server import EmbeddedServer

    with EmbeddedServer(settings, lease_seconds=3.0) as server:
        yield server


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL on the local PostgreSQL, in a schema of its own dropped afterwards (skips if unreachable)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_URL)
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc.orig}")
    name = "localft_test_" + secrets.token_hex(6)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
