"""The LLM request layer every LLM-backed role uses: any OpenAI-compatible endpoint, bounded and cached."""

from dataflux.llm.client import Completion, Endpoint, LLMClient, LLMError

__all__ = ["Completion", "Endpoint", "LLMClient", "LLMError"]
