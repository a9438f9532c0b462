"""Prefixed random ids in OpenAI's shapes: file-…, ftjob-…, ftevent-…, ftckpt_…, chatcmpl-…."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def _token(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def file_id() -> str:
    return "file-" + _token(24)


def job_id() -> str:
    return "ftjob-" + _token(24)


def event_id() -> str:
    return "ftevent-" + _token(24)


def checkpoint_id() -> str:
    return "ftckpt_" + _token(24)


def completion_id() -> str:
    return "chatcmpl-" + _token(24)


def short_suffix() -> str:
    """The last slot of a fine-tuned model id (`ft:base:org:suffix:<this>`)."""
    return _token(8)
