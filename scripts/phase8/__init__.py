"""The Phase 8 closure pack: one list of gates (gates.py), run in order by the orchestrator."""
