"""Operator scripts and the Phase 8 harness. Shared helpers live in ``scripts.harness``."""
