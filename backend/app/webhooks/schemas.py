from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WebhookReceipt(BaseModel):
    status: Literal["accepted", "duplicate"]
    event_id: str
