"""The committed API contract: export it from the app, check for drift, validate live responses.

    python -m scripts.contract export   # rewrite backend/contracts/openapi.yaml from the app
    python -m scripts.contract check    # exit 1 when the app and the committed contract differ

The contract is the authority for runtime fidelity (EG8.6): live responses are validated against
the committed file with JSON Schema Draft 2020-12, never against what the app says about itself.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from scripts.harness import EXIT_CODES_HELP, REPO_ROOT, ExitCode

CONTRACT = REPO_ROOT / "backend" / "contracts" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def generate() -> dict[str, Any]:
    from app.main import build_app

    return dict(build_app().openapi())


def dump(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=True, allow_unicode=True, width=120)


def load(path: Path = CONTRACT) -> dict[str, Any]:
    return dict(yaml.safe_load(path.read_text()))


def operations(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every (path, METHOD, status) the document promises."""
    return {
        (path, method.upper(), str(status))
        for path, item in spec.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
        for status in operation.get("responses", {})
    }


def drift(app_spec: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """Readable differences: operations on one side only first, then any other change."""
    ours, theirs = operations(app_spec), operations(committed)
    lines = [f"only in the app: {op}" for op in sorted(ours - theirs)]
    lines += [f"only in the contract: {op}" for op in sorted(theirs - ours)]
    if not lines and dump(app_spec) != dump(committed):
        lines.append("schemas differ (run `python -m scripts.contract export` and review the diff)")
    return lines


@dataclass
class ContractValidator:
    spec: dict[str, Any]

    @classmethod
    def committed(cls) -> ContractValidator:
        return cls(load())

    def schema_for(self, method: str, path: str, status: int) -> dict[str, Any]:
        try:
            response = self.spec["paths"][path][method.lower()]["responses"][str(status)]
        except KeyError as exc:
            raise LookupError(f"the contract has no {method.upper()} {path} -> {status}") from exc
        content = response.get("content", {})
        media = content.get("application/json") or content.get("application/problem+json")
        if media is None or "schema" not in media:
            raise LookupError(f"the contract gives no body schema for {method.upper()} {path} -> {status}")
        return dict(media["schema"])

    def errors(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """Why ``body`` breaks the contract for that response (empty when it conforms)."""
        root = {**self.schema_for(method, path, status), "components": self.spec.get("components", {})}
        validator = jsonschema.Draft202012Validator(root)
        return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(body)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["export", "check"])
    args = parser.parse_args(argv)
    spec = generate()
    if args.command == "export":
        CONTRACT.parent.mkdir(parents=True, exist_ok=True)
        CONTRACT.write_text(dump(spec))
        print(f"wrote {CONTRACT.relative_to(REPO_ROOT)} ({len(operations(spec))} responses)")
        return ExitCode.PASS
    differences = drift(spec, load())
    for line in differences:
        print(line, file=sys.stderr)
    return ExitCode.GATE_FAILED if differences else ExitCode.PASS


if __name__ == "__main__":
    sys.exit(main())
