"""Reject oversized uploads from their `Content-Length`, before a byte of the body is parsed or spooled.

Bodies without a length (chunked) are still bounded: the file service counts bytes while streaming to disk.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from localft.api.errors import error_body

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
                body = error_body(
                    f"File too large: the request declares {length} bytes; the limit is {self.max_bytes} bytes "
                    "(LOCALFT_MAX_UPLOAD_BYTES).",
                    "invalid_request_error",
                    "file",
                    "file_too_large",
                )
                payload = json.dumps(body).encode()
                await _discard_body(receive)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, receive, send)


async def _discard_body(receive: Receive) -> None:
    """Read the rest of the request and throw it away, keeping nothing.

    Answering while the client is still sending makes the server close a socket with unread data, which the
    kernel turns into a reset; the client then loses the 413 it was sent and reports a connection error instead.
    """
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
