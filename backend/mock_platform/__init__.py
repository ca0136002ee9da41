"""A real HTTP server standing in for third parties (payment platform, LLM provider)."""
