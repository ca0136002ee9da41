"""The reconciliation routes under the path the runbooks name; they live in app.reconciliation.routes."""

from app.reconciliation.routes import router

__all__ = ["router"]
