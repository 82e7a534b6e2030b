"""What every stage that asks an LLM endpoint shares (question writer, openai answerer, LLM judge)."""

from __future__ import annotations


class UsesEndpoint:
    """Mixin before the stage's base class; the stage sets `endpoint` and `cache_path`. One client (and
    one cache connection) per worker, opened in `setup` so usage counts add up across batches."""

    client = None

    def setup(self) -> None:
        from dataflux.llm.client import LLMClient

        self.client = LLMClient.open(self.endpoint, self.cache_path)

    def teardown(self) -> None:
        if self.client is not None:
            self.client.close_cache()
