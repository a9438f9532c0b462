"""`localft chat` against a live server with a tiny base model (generation) and an unknown model (error)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from localft.api.server import EmbeddedServer
from localft.cli import main
from localft.cli.render import EXIT_API_ERROR


def test_chat_prints_the_answer_and_json(live_server: EmbeddedServer, tiny_causal_lm: Path) -> None:
    args = [
        "chat",
        str(tiny_causal_lm),
        "the flight was great",
        "--max-tokens",
        "4",
        "--base-url",
        live_server.base_url,
    ]
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    completion = json.loads(as_json.stdout)
    assert completion["object"] == "chat.completion"
    assert completion["usage"]["completion_tokens"] <= 4
    answer = completion["choices"][0]["message"]["content"]

    plain = CliRunner().invoke(main, args)  # temperature 0: the same answer, printed as is
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == answer + "\n"


def test_chat_with_an_unknown_model_is_a_clean_error(live_server: EmbeddedServer) -> None:
    result = CliRunner().invoke(main, ["chat", "no-such-model", "hi", "--base-url", live_server.base_url])
    assert result.exit_code == EXIT_API_ERROR
    assert "no-such-model" in result.output and "[HTTP 404]" in result.output
