"""Operator tools used by the runbooks in docs/ops/."""
