"""LiteLLM's SDK as a peer of the boundary: the one module of the repository that imports an LLM SDK.

It exists only so ``scripts/bench/peers.py`` can time ``litellm.acompletion`` against the mock
provider beside our boundary; nothing in the product imports it, and LiteLLM is installed only in
the ``bench_peers`` nox session's own virtualenv, never in the product's lock. The boundary scan
(``test_b07_p0_provider_boundary_enforcement.py``) allows this file to import ``litellm`` and
nothing else of its list.

LiteLLM runs as a new user would call it: no router, no budgets, no callbacks, no cache; only its
telemetry is off and its model-price map is the bundled one, so the run makes no call beyond the
mock.
"""

from __future__ import annotations

import os
from typing import Any

from app.llm.config import LLMConfig
from scripts.bench.llm_calls import MOCK_CHAT_PATH, AsyncCall

# Read when litellm is imported: the bundled price map, not a download from the internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # type: ignore[import-not-found, unused-ignore]  # after the setting above

# What an OpenAI-compatible SDK appends to its base URL; the mock's route is the provider's.
OPENAI_BASE_PATH = MOCK_CHAT_PATH.removesuffix("/chat/completions")


def version() -> str:
    from importlib.metadata import version as installed

    return installed("litellm")


def litellm_caller(mock_url: str, config: LLMConfig, model: str) -> AsyncCall:
    """``litellm.acompletion`` at the mock's OpenAI-compatible endpoint, with the boundary's limits."""
    litellm.telemetry = False
    litellm.suppress_debug_info = True

    async def call(request_id: str, prompt: str) -> None:
        reply: Any = await litellm.acompletion(
            model=f"openai/{model}",  # the OpenAI-compatible provider; the mock sees ``model`` itself
            api_base=f"{mock_url}{OPENAI_BASE_PATH}",
            api_key="mock-needs-no-key",  # the client insists on one; the mock ignores it
            messages=[{"role": "user", "content": prompt}],
            max_tokens=config.max_tokens,
            timeout=config.timeout_s,
        )
        if not reply.choices or not reply.choices[0].message.content:
            raise RuntimeError(f"litellm call {request_id}: empty reply")

    return call
