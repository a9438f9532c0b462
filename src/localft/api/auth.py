"""API keys: open when none are configured (the loopback default), Bearer tokens checked when they are."""

from __future__ import annotations

import hmac

from fastapi import Request

from localft.api.errors import AuthenticationError
from localft.settings import Settings


def require_api_key(request: Request) -> None:
    """FastAPI dependency on every `/v1` route; raises AuthenticationError (401) for a missing or wrong key."""
    settings: Settings = request.app.state.settings
    if not settings.api_keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' "
            "(the openai SDK does this from api_key / OPENAI_API_KEY).",
            code="missing_api_key",
        )
    token = token.strip()
    # compare_digest against every key: how long a wrong key takes to reject says nothing about the right ones.
    if not any(hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys):
        shown = token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 8 else "*" * len(token)
        raise AuthenticationError(
            f"Incorrect API key provided: {shown}. Use one of the keys in LOCALFT_API_KEYS.",
            code="invalid_api_key",
        )


def is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")
