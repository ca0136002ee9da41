"""The OpenAPI document the app serves and the committed contract is exported from.

FastAPI describes errors as application/json with its own validation shape; ours are RFC 9457
problem documents, so every 4xx/5xx response is rewritten to application/problem+json.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    spec = get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    description = response.get("description", "problem details")
                    if description in ("Validation Error", "Successful Response"):
                        description = "problem details"
                    response.clear()
                    response.update(
                        description=description, content={"application/problem+json": {"schema": PROBLEM_REF}}
                    )
            if any(p.get("name") == "authorization" for p in operation.get("parameters", [])):
                operation["parameters"] = [p for p in operation["parameters"] if p.get("name") != "authorization"]
                operation["security"] = [{"bearerAuth": []}]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    spec["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    return spec


def install_openapi(app: FastAPI) -> None:
    def cached() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = cached  # type: ignore[method-assign]
