"""Reject oversized uploads from their `Content-Length`, before a byte of the body is parsed or spooled.

Bodies without a length (chunked) are still bounded: the file service counts bytes while streaming to disk.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from localft.api.errors import send_error
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
