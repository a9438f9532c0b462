"""The OpenAPI document as the server behaves: the error statuses it sends, in OpenAI's envelope, and no other.

FastAPI documents a 422 for every route with parameters, which this server never sends (bad parameters are 400,
as OpenAI answers them), and none of the 400, 401, 404 and 413 it does send. Generated clients and schema-driven
tests read this document, so it is rewritten to match.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from localft.api.protocol import ErrorResponse

_ERRORS = {
    "400": "Invalid request: the message names the field (`param`) and the fix.",
    "401": "Missing or wrong API key (when keys are configured).",
    "404": "No such object, or not one this key's project may see.",
}
_TOO_LARGE = {"413": "The upload is larger than LOCALFT_MAX_UPLOAD_BYTES."}
_UPLOADS = ("/v1/files", "post")


def install(app: FastAPI) -> None:
    """Serve the corrected document at `/openapi.json` (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = real_responses(schema)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


def real_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with 422 dropped and the real error responses of every `/v1` operation added."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    envelope = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(envelope.pop("$defs", {}))
    components["ErrorResponse"] = envelope
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith("/v1/"):
                continue
            errors = {**_ERRORS, **(_TOO_LARGE if (path, method) == _UPLOADS else {})}
            for status, description in errors.items():
                responses[status] = {"description": description, "content": content}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
