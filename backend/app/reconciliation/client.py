"""The payment platform's balance-transactions listing: every page of a window, politely retried.

429 answers are retried after their ``Retry-After`` (capped); 5xx and transport errors back off
exponentially; both within a bounded number of retries, after which the fetch fails with a reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx


class FetchError(RuntimeError):
    """The window could not be fetched completely; the message is the run's failure reason."""


@dataclass
class FetchResult:
    transactions: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    retries: int = 0


@dataclass
class PaymentsClient:
    base_url: str
    api_key: str
    page_size: int = 100
    max_retries: int = 4
    max_retry_after_s: float = 30.0
    timeout_s: float = 15.0
    sleep: Callable[[float], None] = time.sleep

    def fetch_window(self, start: datetime, end: datetime) -> FetchResult:
        result = FetchResult()
        params: dict[str, Any] = {
            "created[gte]": int(start.timestamp()),
            "created[lt]": int(end.timestamp()),
            "limit": self.page_size,
        }
        with httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout_s,
            headers={"Authorization": f"Bearer {self.api_key}"},
        ) as client:
            while True:
                page = self._page(client, params, result)
                result.pages += 1
                data = page.get("data")
                if not isinstance(data, list):
                    raise FetchError("malformed page: no data list")
                result.transactions.extend(data)
                if not page.get("has_more") or not data:
                    return result
                params["starting_after"] = data[-1]["id"]

    def _page(self, client: httpx.Client, params: dict[str, Any], result: FetchResult) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                response = client.get("/v1/balance_transactions", params=params)
            except httpx.HTTPError as exc:
                reason, wait = f"transport error: {type(exc).__name__}", None
            else:
                if response.status_code == 200:
                    return dict(response.json())
                if response.status_code == 429:
                    reason, wait = "rate limited (429)", _retry_after(response)
                elif response.status_code >= 500:
                    reason, wait = f"upstream error ({response.status_code})", None
                else:
                    raise FetchError(f"platform refused the request ({response.status_code})")
            if attempt >= self.max_retries:
                raise FetchError(f"{reason}; gave up after {attempt} retries")
            attempt += 1
            result.retries += 1
            backoff = wait if wait is not None else min(0.2 * 2**attempt, 5.0)
            self.sleep(min(backoff, self.max_retry_after_s))


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0
