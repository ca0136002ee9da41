"""The LLM provider boundary: the only code that may reach a model provider (DESIGN §8)."""
