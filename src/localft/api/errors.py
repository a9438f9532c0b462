"""Every HTTP error in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`.

Domain exceptions (localft.errors) map to statuses here and nowhere else. FastAPI's 422 validation errors are
re-shaped into 400 `invalid_request_error`s naming the field (OpenAI answers bad parameters with 400), unknown
routes get a 404 in the same envelope, and anything unexpected a 500 without a traceback, on a connection that
stays open (`CatchAll`). No 409 is ever sent: the SDK retries 409s, and "this job already finished" does not get
better by retrying.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from localft.errors import (
    LocalftError,
    NotFoundError,
    StoreError,
    TrainingError,
)
from localft.jobs.files import FileTooLargeError

log = logging.getLogger(__name__)


class AuthenticationError(LocalftError):
    """A missing or wrong API key (401)."""


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_of(exc: LocalftError) -> tuple[int, str]:
    """HTTP status and OpenAI error `type` of a domain exception."""
    if isinstance(exc, AuthenticationError):
        return 401, "invalid_request_error"
    if isinstance(exc, NotFoundError):
        return 404, "invalid_request_error"
    if isinstance(exc, FileTooLargeError):
        return 413, "invalid_request_error"
    if isinstance(exc, TrainingError | StoreError):
        return 500, "server_error"
    return 400, "invalid_request_error"


def _domain(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LocalftError)
    status, type_ = status_of(exc)
    return JSONResponse(error_body(exc.message, type_, exc.param, exc.code), status_code=status)


def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "Invalid request."}
    if first.get("type") == "json_invalid":  # its loc holds a character position, not a field
        ctx = first.get("ctx")
        problem = ctx.get("error", "invalid JSON") if isinstance(ctx, dict) else "invalid JSON"
        message = f"We could not parse the JSON body of your request ({problem}); send one JSON object."
        return JSONResponse(error_body(message, "invalid_request_error"), status_code=400)
    # loc starts with where the value came from ("body", "query", "path"); the rest is the field path.
    parts = [str(p) for p in first.get("loc", ())[1:]]
    param = ".".join(parts) or None
    message = f"Invalid value for '{param}': {first.get('msg', 'invalid')}." if param else str(first.get("msg"))
    if first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first.get("type") == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    return JSONResponse(error_body(message, "invalid_request_error", param, None), status_code=400)


def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"Invalid URL ({_request.method} {_request.url.path})"
    else:
        message = str(exc.detail)
    type_ = "server_error" if exc.status_code >= 500 else "invalid_request_error"
    return JSONResponse(error_body(message, type_), status_code=exc.status_code, headers=exc.headers)


def _unexpected_body(exc: BaseException) -> bytes:
    message = f"The server had an error while processing your request ({type(exc).__name__})."
    return json.dumps(error_body(message, "server_error")).encode()


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a 500 in the envelope, and the connection stays usable.

    Starlette's own last-resort handler answers and then re-raises for the server to log; uvicorn then closes the
    keep-alive connection under the client, whose next request on it fails with a reset. Here the exception ends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            await _send_json(send, 500, _unexpected_body(exc))


async def send_error(scope: Scope, receive: Receive, send: Send, exc: LocalftError) -> None:
    """Answer from an ASGI middleware, before the app has read the request: the body is read and dropped first.

    Answering while the client is still sending makes the server close a socket with unread data, which the
    kernel turns into a reset; the client then loses the answer it was sent and reports a connection error.
    Nothing read is kept, so a long body costs time, never memory.
    """
    status, type_ = status_of(exc)
    payload = json.dumps(error_body(exc.message, type_, exc.param, exc.code)).encode()
    while (message := await receive())["type"] == "http.request" and message.get("more_body", False):
        pass
    await _send_json(send, status, payload)


async def _send_json(send: Send, status: int, payload: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def install(app: FastAPI) -> None:
    """Register the handlers and the catch-all on `app`."""
    app.add_exception_handler(LocalftError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_middleware(CatchAll)
