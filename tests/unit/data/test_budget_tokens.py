"""OpenAI's n_epochs "auto" rule, trained tokens, and token counting."""

from __future__ import annotations

import pytest

from localft.data.budget import auto_n_epochs, trained_tokens
from localft.data.tokens import approx_tokens, example_tokens


@pytest.mark.parametrize(
    ("n_examples", "epochs"),
    [(1, 25), (5, 20), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (10_000, 2), (30_000, 1)],
)
def test_auto_n_epochs_follows_openais_rule(n_examples: int, epochs: int) -> None:
    assert auto_n_epochs(n_examples) == epochs


def test_trained_tokens_truncates_each_example() -> None:
    assert trained_tokens([10, 50, 200], n_epochs=3) == 3 * 260
    assert trained_tokens([10, 50, 200], n_epochs=3, max_tokens=100) == 3 * 160


def test_token_estimate_and_message_overheads() -> None:
    assert [approx_tokens(text) for text in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    messages = [{"role": "user", "content": "abcdefgh", "name": "bob"}, {"role": "assistant", "content": "yes"}]
    # reply priming 3 + (3 + 2 tokens + name 1 + 1) + (3 + 1)
    assert example_tokens(messages, approx_tokens) == 3 + (3 + 2 + 1 + 1) + (3 + 1)
