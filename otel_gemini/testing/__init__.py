"""Fakes of Gemini and Langfuse servers for tests, ours and users'."""
