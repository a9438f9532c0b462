"""Route of `/v1/chat/completions`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from localft.api.auth import caller_of
from localft.api.chat.protocol import ChatCompletion, ChatCompletionRequest
from localft.api.chat.service import ChatService

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", response_model=ChatCompletion)
def create_chat_completion(request: Request, body: ChatCompletionRequest) -> ChatCompletion:
    """Answer with a base model, a fine-tuned model or a checkpoint (`ft:...:ckpt-step-N`)."""
    service: ChatService = request.app.state.chat
    return service.create(body, caller_of(request).scope)
