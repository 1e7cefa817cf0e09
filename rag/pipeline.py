"""The whole question path in one place (retrieve -> answer), shared by the CLI, the app and the evaluation.

With `llm.provider = extractive` (default) the answer is extractive. With an LLM provider the passages go
to the model (rag.llm), its answer is verified against the cited passages, and any failure of the model
falls back to the extractive answer with a one-line note.
"""
from __future__ import annotations

import time
from typing import Callable

from .answer import ExtractiveAnswerer
from .config import Settings
from .retriever import Retriever
from .types import Answer


class Pipeline:
    def __init__(self, settings: Settings, retriever: Retriever | None = None):
        self.settings = settings
        self.retriever = retriever or Retriever(settings)
        self.extractive = ExtractiveAnswerer(
            self.retriever.coverage,
            settings.answer,
            section_chunks=self.retriever.section_chunks,
            known=self.retriever.known,
            missing=self.retriever.missing,
            section_match=settings.retrieval.section_match,
            doc_meta=self.retriever.doc_meta,
        )

    def ask(
        self,
        question: str,
        k: int | None = None,
        cities: list[str] | None = None,
        years: list[str] | None = None,
        mode: str = "hybrid",
        on_token: Callable[[str], None] | None = None,
        provider: str | None = None,
        on_event: Callable[[dict], None] | None = None,
    ) -> Answer:
        """Answer `question`. `provider` overrides settings.llm.provider; `on_token` receives streamed LLM text;
        `on_event` the stages as they start: {"stage": "retrieve"}, then with an LLM {"stage": "generate",
        "model": …}, {"stage": "first_token", "ms": …}, {"stage": "verify"}."""
        t0 = time.perf_counter()
        if on_event is not None:
            on_event({"stage": "retrieve"})
        with self.retriever.pinned():  # one index generation for the search and the answer's section lookups
            res = self.retriever.search(question, k=k, cities=cities, years=years, mode=mode)
            t1 = time.perf_counter()
            ans = self.extractive.answer(res.query, res.hits)
        t2 = time.perf_counter()
        timings = {**{f"retrieve.{k}": v for k, v in res.timings_ms.items()}, "retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000}
        provider = (provider or self.settings.llm.provider or "extractive").lower()
        if provider != "extractive":
            from .llm import llm_answer  # imported only when an LLM is used

            ans = llm_answer(self.settings, provider, res.query, res.hits, fallback=ans, on_token=on_token, on_event=on_event, started=t0)
            timings["generate"] = (time.perf_counter() - t2) * 1000
            if ans.llm.get("first_token_ms") is not None:
                timings["first_token"] = ans.llm["first_token_ms"]
        ans.hits = res.hits
        ans.filters = {"cities": res.query.cities, "years": res.query.years, "comparative": res.query.comparative}
        timings["total"] = (time.perf_counter() - t0) * 1000
        ans.timings_ms = timings
        return ans
