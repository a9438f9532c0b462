"""The shared client helper and the CLI's error handling, without a localft server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from localft.cli import main
from localft.cli.render import EXIT_UNREACHABLE
from localft.client import DEFAULT_BASE_URL, connect, resolve_base_url, server_answers


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALFT_BASE_URL", raising=False)
    assert resolve_base_url(None) == (DEFAULT_BASE_URL, False)
    monkeypatch.setenv("LOCALFT_BASE_URL", "http://env:1/v1/")
    assert resolve_base_url(None) == ("http://env:1/v1", True)
    assert resolve_base_url("http://flag:2/v1") == ("http://flag:2/v1", True)


def test_a_chosen_url_is_never_replaced_by_an_embedded_server() -> None:
    url = _closed_port_url()
    assert not server_answers(url)
    with connect(url, start_if_down=True) as conn:
        assert conn.base_url == url
        assert not conn.embedded


def test_unreachable_server_is_a_clean_error_with_its_exit_code(tmp_path: Path) -> None:
    url = _closed_port_url()
    result = CliRunner().invoke(main, ["files", "list", "--base-url", url])
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert "Cannot reach" in result.output
    assert "--base-url" in result.output
    assert "Traceback" not in result.output
