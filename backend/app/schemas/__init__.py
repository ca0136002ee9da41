"""Response models: the shapes the committed contract (backend/contracts/openapi.yaml) promises."""
