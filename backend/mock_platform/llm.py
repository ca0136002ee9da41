"""An OpenAI-compatible chat-completions endpoint with deterministic answers and token usage.

The same prompt always yields the same text, reasoning and usage, so tests can assert on them;
faults (error, slow, rate_limit) come from the shared fault middleware.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

WORDS = (
    "channel",
    "revenue",
    "spend",
    "search",
    "social",
    "email",
    "lift",
    "baseline",
    "trend",
    "shift",
    "budget",
    "return",
    "touch",
    "conversion",
    "weekly",
    "signal",
)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=32_000)


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/chat/completions")
    async def complete(request: ChatRequest) -> dict[str, Any]:
        if not request.model.startswith("mock-"):
            raise HTTPException(404, f"model {request.model!r} not found")
        prompt = "\n".join(m.content for m in request.messages)
        digest = hashlib.sha256(f"{request.model}\n{prompt}".encode()).digest()
        length = min(request.max_tokens, 40 + digest[0] % 80)
        words = [WORDS[b % len(WORDS)] for b in (digest * 8)[:length]]
        text = " ".join(words)
        completion_tokens = min(request.max_tokens, tokens(text))
        return {
            "id": f"chatcmpl-{digest.hex()[:24]}",
            "object": "chat.completion",
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "reasoning": f"considered {len(request.messages)} message(s); "
                        f"weighed {' and '.join(words[:3])}",
                    },
                }
            ],
            "usage": {
                "prompt_tokens": tokens(prompt),
                "completion_tokens": completion_tokens,
                "total_tokens": tokens(prompt) + completion_tokens,
            },
        }

    return router
