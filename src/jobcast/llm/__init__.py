"""LLM toolkit for job authors."""
