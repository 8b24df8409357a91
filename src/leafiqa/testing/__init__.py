"""Helpers for tests and benchmarks, not used by LEAF itself: a mock OpenAI-compatible teacher
server (``mock_teacher``)."""
