"""What a request may hold, checked before the app sees it: uploads no larger than the limit, URLs without NUL.

Oversized uploads are refused from their `Content-Length`, before a byte of the body is parsed or spooled; bodies
without a length (chunked) are still bounded: the file service counts bytes while streaming to disk. A NUL
character in a URL names no object, and PostgreSQL refuses to even compare text holding one.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from localft.api.errors import send_error
from localft.errors import InvalidRequestError
from localft.jobs.files import FileTooLargeError

_MULTIPART_SLACK = 64 * 1024
"""Room for the multipart boundaries and the `purpose` field around the file itself."""


class UploadLimit:
    """ASGI middleware: 413 in OpenAI's envelope for a `POST /v1/files` whose declared size is over the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == "/v1/files":
            headers = dict(scope["headers"])
            length = headers.get(b"content-length", b"").decode()
            if length.isdigit() and int(length) > self.max_bytes + _MULTIPART_SLACK:
                error = FileTooLargeError(
                    f"File too large: the request declares {length} bytes; the limit is {self.max_bytes} bytes "
                    "(LOCALFT_MAX_UPLOAD_BYTES).",
                    param="file",
                    code="file_too_large",
                )
                await send_error(scope, receive, send, error)
                return
        await self.app(scope, receive, send)


class NoNulInUrl:
    """ASGI middleware: 400 in OpenAI's envelope for a path or query string holding a NUL character."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            if b"\x00" in unquote_to_bytes(raw) or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
                error = InvalidRequestError(
                    "The URL holds a NUL character (%00), which no id or parameter may contain.", code="invalid_url"
                )
                await send_error(scope, receive, send, error)
                return
        await self.app(scope, receive, send)
