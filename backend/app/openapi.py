"""The OpenAPI document the app serves and the committed contract is exported from.

FastAPI describes errors as application/json with its own validation shape; ours are RFC 9457
problem documents, so every 4xx/5xx response is rewritten to application/problem+json.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

# OpenAPI links: where a response's id leads. They let a client (and Schemathesis' stateful phase)
# follow a create to its reads instead of guessing ids that do not exist.
# (operation, status) -> {link name: (target operation, parameter, runtime expression)}
LINKS: dict[tuple[str, str], dict[str, tuple[str, str, str]]] = {
    ("create_job_api_v1_attribution_jobs_post", "202"): {
        "GetJob": ("get_job_api_v1_attribution_jobs__job_id__get", "job_id", "$response.body#/job_id"),
    },
    ("create_run_api_v1_reconciliation_runs_post", "202"): {
        "GetRun": ("get_run_api_v1_reconciliation_runs__run_id__get", "run_id", "$response.body#/run_id"),
    },
    **{
        ("request_task_api_v1_llm__task_type__post", status): {
            "GetLLMJob": ("get_job_api_v1_llm_jobs__job_id__get", "job_id", "$response.body#/job_id"),
        }
        for status in ("200", "202")
    },
    ("get_job_api_v1_llm_jobs__job_id__get", "200"): {
        "GetInvestigation": (
            "get_investigation_api_v1_investigations__investigation_id__get",
            "investigation_id",
            "$response.body#/result/investigation_id",
        ),
        "GetBudgetOptimization": (
            "get_budget_optimization_api_v1_budget_optimizations__optimization_id__get",
            "optimization_id",
            "$response.body#/result/budget_optimization_id",
        ),
    },
}


def add_links(spec: dict[str, Any]) -> None:
    operations = {
        operation["operationId"]: operation
        for path_item in spec.get("paths", {}).values()
        for operation in path_item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for (source, status), links in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": {parameter: expression}}
            for name, (target, parameter, expression) in links.items()
        }
        for target, _, _ in links.values():
            assert target in operations, f"link to an unknown operation {target}"


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
    add_links(spec)
    return spec


def install_openapi(app: FastAPI) -> None:
    def cached() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = cached  # type: ignore[method-assign]
