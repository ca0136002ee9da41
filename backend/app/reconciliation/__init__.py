"""Reconciliation of webhook revenue against the payment platform's own record."""
