"""Connecting to a localft server (or any OpenAI-compatible endpoint) through the official `openai` SDK.

The base URL comes from the caller, else `LOCALFT_BASE_URL`, else the local default. When the caller did not
choose a URL and nothing answers there, `connect(..., start_if_down=True)` starts the embedded server for the
duration of the `with` block, so `localft train` works on a fresh machine with nothing else running.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import openai

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
BASE_URL_ENV = "LOCALFT_BASE_URL"
API_KEY_ENV = "LOCALFT_API_KEY"
# An offline localft server without configured keys accepts any bearer token, but the SDK insists on one.
_PLACEHOLDER_KEY = "localft"


@dataclass(frozen=True)
class Connection:
    """An SDK client bound to a base URL, and whether this process started the server behind it."""

    client: openai.OpenAI
    base_url: str
    embedded: bool


def resolve_base_url(base_url: str | None = None) -> tuple[str, bool]:
    """The URL to use and whether the user chose it (flag or environment) rather than taking the default."""
    chosen = base_url or os.environ.get(BASE_URL_ENV)
    return (chosen or DEFAULT_BASE_URL).rstrip("/"), bool(chosen)


def make_client(
    base_url: str, *, api_key: str | None = None, timeout: float = 600.0, max_retries: int = 2
) -> openai.OpenAI:
    """An `openai.OpenAI` for `base_url`; the key falls back to `LOCALFT_API_KEY`, `OPENAI_API_KEY`, a placeholder."""
    key = api_key or os.environ.get(API_KEY_ENV) or os.environ.get("OPENAI_API_KEY") or _PLACEHOLDER_KEY
    return openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=max_retries)


def server_answers(base_url: str, timeout: float = 2.0) -> bool:
    """True when an HTTP server answers at `base_url` (any status counts: a 401 still means someone is there)."""
    try:
        httpx.get(f"{base_url}/models", timeout=timeout)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def connect(
    base_url: str | None = None, *, api_key: str | None = None, start_if_down: bool = False
) -> Iterator[Connection]:
    """Yield a connection; with `start_if_down`, run the embedded server when the default URL has no server.

    A URL the user chose explicitly is never replaced by an embedded server: silently training somewhere else
    than asked would be worse than the connection error.
    """
    url, chosen = resolve_base_url(base_url)
    if not start_if_down or chosen or server_answers(url):
        yield Connection(make_client(url, api_key=api_key), url, embedded=False)
        return
    from localft.api.server import EmbeddedServer  # imported late: it pulls in the whole server
    from localft.settings import Settings

    with EmbeddedServer(Settings.from_env()) as server:
        yield Connection(make_client(server.base_url, api_key=api_key), server.base_url, embedded=True)


def api_error_message(exc: openai.OpenAIError) -> str:
    """One line for a user: the server's own error message (and its `param`), never a traceback."""
    if isinstance(exc, openai.APIStatusError):
        # The SDK has already unwrapped OpenAI's envelope: `body` is the inner {"message", "type", "param", "code"}.
        error = exc.body if isinstance(exc.body, dict) else {}
        message = str(error.get("message") or exc.message)
        param = error.get("param")
        suffix = f" (param: {param})" if param else ""
        return f"{message}{suffix} [HTTP {exc.status_code}]"
    if isinstance(exc, openai.APIConnectionError):
        url = str(exc.request.url) if exc.request is not None else "the server"
        return f"Cannot reach {url}: start a server with `localft serve` or pass --base-url."
    return str(exc)
