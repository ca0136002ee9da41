"""Send one signed webhook as a tenant would (Standard Webhooks), and print the api's answer.

    python -m scripts.ops.send_webhook --tenant-json acme.json --platform touchpoints --body touch.json

``--tenant-json`` is what ``python -m scripts.ops.tenants create --json`` printed (its
``tenant_id`` and ``webhook_secret`` are used; keep the file private). The body is sent byte for
byte as the file holds it. The api is $E2E_API_BASE_URL (in .run/topology.env) unless --base-url
says otherwise. Exit 0 on a 2xx answer, 1 on any other, 2 on a usage or environment error.

The same by hand, with curl and openssl (the secret is base64 after its ``whsec_`` prefix):

    id=msg_$(date +%s%N); ts=$(date +%s)
    key=$(jq -r .webhook_secret acme.json | sed 's/^whsec_//' | base64 -d | xxd -p -c 256)
    sig=$(printf '%s.%s.%s' "$id" "$ts" "$(cat touch.json)" \\
          | openssl dgst -sha256 -mac HMAC -macopt hexkey:"$key" -binary | base64)
    curl -sS "$E2E_API_BASE_URL/webhooks/touchpoints" -H "x-tenant-id: $(jq -r .tenant_id acme.json)" \\
         -H "webhook-id: $id" -H "webhook-timestamp: $ts" -H "webhook-signature: v1,$sig" \\
         -H 'content-type: application/json' --data-binary @touch.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import httpx

from app.webhooks.signatures import sign
from scripts.harness import EXIT_CODES_HELP, ExitCode, emit, env_default, fail

PLATFORMS = ("touchpoints", "stripe", "shopify")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.ops.send_webhook",
        description=__doc__,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--tenant-json", type=Path, required=True, help="output of `tenants create --json`")
    parser.add_argument("--platform", choices=PLATFORMS, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file holding the JSON payload")
    parser.add_argument("--base-url", default=env_default("E2E_API_BASE_URL"), help="default $E2E_API_BASE_URL")
    args = parser.parse_args(argv)
    if not args.base_url:
        fail(
            ExitCode.USAGE_OR_ENVIRONMENT, "no api: pass --base-url or set E2E_API_BASE_URL (source .run/topology.env)"
        )
    try:
        tenant = json.loads(args.tenant_json.read_text())
        body = args.body.read_bytes()
        tenant_id, secret = str(tenant["tenant_id"]), str(tenant["webhook_secret"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"cannot read the tenant or the body: {type(exc).__name__}: {exc}")
    webhook_id, timestamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    headers = {
        "content-type": "application/json",
        "x-tenant-id": tenant_id,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }
    try:
        response = httpx.post(f"{args.base_url}/webhooks/{args.platform}", content=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        fail(ExitCode.USAGE_OR_ENVIRONMENT, f"api unreachable: {type(exc).__name__}")
    try:
        answer = response.json()
    except ValueError:
        answer = response.text[:500]
    emit({"status": response.status_code, "webhook_id": webhook_id, "answer": answer})
    return ExitCode.PASS if response.is_success else ExitCode.GATE_FAILED


if __name__ == "__main__":
    sys.exit(main())
