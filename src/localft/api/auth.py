"""API keys and projects: who is calling, decided before anything reads the request body.

With no keys configured the API is open (the loopback default) and every caller sees everything. With keys, every
`/v1` request needs `Authorization: Bearer KEY`. A key may belong to a project (`KEY:PROJECT`, as OpenAI's project
keys do): it then sees only the files, jobs and fine-tuned models its project made, and everything else is a 404,
as if it did not exist; base models are shared. A key without a project is an admin key, as every key was before
projects existed: it sees every project. Keys are compared in constant time and never logged or echoed in full.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from localft.api.errors import AuthenticationError, send_error
from localft.settings import Settings

PROJECT_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CALLER = "localft_caller"
"""Where the middleware leaves the Caller in the request's scope state."""


@dataclass(frozen=True)
class Caller:
    """Who is calling: a project, or None for an admin key (and for everyone when no keys are configured)."""

    project: str | None = None

    @property
    def scope(self) -> str | None:
        """The project whose objects the caller may see; None: all of them."""
        return self.project


OPEN = Caller()


class KeyTable:
    """The configured keys and the project of each; empty means the API is open."""

    def __init__(self, projects: dict[str, str | None]) -> None:
        # Only digests are kept: comparing fixed-length digests takes the same time whatever the key's length.
        self._entries = [(_digest(key), project) for key, project in projects.items()]

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyTable:
        """`LOCALFT_API_KEYS` and the keys file; ValueError naming the bad entry (never the key) otherwise."""
        entries = [(entry, "LOCALFT_API_KEYS") for entry in settings.api_keys]
        if settings.api_keys_file is not None:
            entries += _file_entries(settings.api_keys_file)
        projects: dict[str, str | None] = {}
        for entry, where in entries:
            key, _, project = entry.strip().partition(":")
            key, project = key.strip(), project.strip()
            if not key:
                raise ValueError(f"{where}: an entry has no key before ':'.")
            if project and not PROJECT_NAME.match(project):
                raise ValueError(
                    f"{where}: project {project!r} is not a valid name: use 1-64 letters, digits, '.', '_' or '-'."
                )
            projects[key] = project or None
        return cls(projects)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def caller(self, token: str) -> Caller | None:
        """The caller a bearer token stands for, or None when it is no configured key."""
        digest = _digest(token)
        found: Caller | None = None
        for key, project in self._entries:  # every entry is compared: the time taken says nothing about which
            if hmac.compare_digest(digest, key):
                found = Caller(project)
        return found


class ApiKeys:
    """ASGI middleware: the key of every `/v1` request is checked first, so a request without a valid key gets
    401 whatever its body holds (a malformed body must not be parsed, and answered, for a stranger)."""

    def __init__(self, app: ASGIApp, keys: KeyTable) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        caller: Caller | AuthenticationError = OPEN if not self.keys else self._identify(scope)
        if isinstance(caller, AuthenticationError):
            await send_error(scope, receive, send, caller)
            return
        scope.setdefault("state", {})[_CALLER] = caller
        await self.app(scope, receive, send)

    def _identify(self, scope: Scope) -> Caller | AuthenticationError:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return AuthenticationError(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' "
                "(the openai SDK does this from api_key / OPENAI_API_KEY).",
                code="missing_api_key",
            )
        caller = self.keys.caller(token)
        if caller is None:
            return AuthenticationError(
                f"Incorrect API key provided: {_masked(token)}. Use one of the keys in LOCALFT_API_KEYS.",
                code="invalid_api_key",
            )
        return caller


def caller_of(request: Request) -> Caller:
    """The caller the middleware identified (OPEN where no keys are configured)."""
    caller = request.scope.get("state", {}).get(_CALLER, OPEN)
    assert isinstance(caller, Caller)
    return caller


def is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


def _guarded(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _masked(token: str) -> str:
    """Enough of a wrong key for its owner to recognise it, never the whole of it."""
    return token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 8 else "*" * len(token)


def _file_entries(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"LOCALFT_API_KEYS_FILE: cannot read {path}: {exc.strerror or exc}") from exc
    return [
        (line.strip(), f"{path} line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
