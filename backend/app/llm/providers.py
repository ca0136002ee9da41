"""Provider clients. Only this module may speak to a model provider; a test scans for others.

Both configured providers speak the OpenAI-compatible chat-completions protocol: ``mock`` is the
mock platform, ``openai_compatible`` any real endpoint. Which one is used is configuration only.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"


class ProviderFailure(Exception):
    """The provider did not answer usefully; ``reason`` goes to the ledger."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    text: str
    reasoning: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    raw_model: str


@dataclass(frozen=True)
class ChatProvider:
    name: str
    base_url: str
    api_key: str = field(repr=False)
    # One HTTP client per process, made on first use: building one loads the CA bundle (costly in
    # CPU) and a shared one keeps connections alive. Keyed by pid because a prefork worker
    # child must not reuse its parent's sockets. httpx clients are safe to share between threads.
    _clients: dict[int, httpx.Client] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _client(self) -> httpx.Client:
        pid = os.getpid()
        client = self._clients.get(pid)
        if client is None:
            client = self._clients.setdefault(pid, httpx.Client(base_url=self.base_url))
        return client

    def complete(self, model: str, prompt: str, *, max_tokens: int, timeout_s: float) -> Reply:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        started = time.perf_counter()
        try:
            response = self._client().post(
                CHAT_COMPLETIONS_PATH, json=body, headers=headers, timeout=httpx.Timeout(timeout_s)
            )
        except httpx.TimeoutException:
            raise ProviderFailure("timeout") from None
        except httpx.HTTPError as exc:
            raise ProviderFailure(f"transport_error:{type(exc).__name__}") from None
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code == 429:
            raise ProviderFailure("rate_limited")
        if response.status_code >= 400:
            raise ProviderFailure(f"http_{response.status_code}")
        try:
            data = response.json()
            message = data["choices"][0]["message"]
            usage = data["usage"]
            return Reply(
                text=str(message["content"]),
                reasoning=str(message.get("reasoning", "")),
                prompt_tokens=int(usage["prompt_tokens"]),
                completion_tokens=int(usage["completion_tokens"]),
                latency_ms=latency_ms,
                raw_model=str(data.get("model", model)),
            )
        except (ValueError, KeyError, IndexError, TypeError):
            raise ProviderFailure("malformed_response") from None
