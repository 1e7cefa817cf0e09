"""The whole question path in one place (retrieve -> answer), shared by the CLI, the app and the evaluation."""
from __future__ import annotations

import time

from .answer import ExtractiveAnswerer
from .config import Settings
from .retriever import Retriever
from .types import Answer


class Pipeline:
    def __init__(self, settings: Settings, retriever: Retriever | None = None):
        self.settings = settings
        self.retriever = retriever or Retriever(settings)
        self.extractive = ExtractiveAnswerer(self.retriever.coverage, min_coverage=settings.retrieval.abstain_min_overlap)

    def ask(self, question: str, k: int | None = None, cities: list[str] | None = None, years: list[str] | None = None, mode: str = "hybrid", on_token=None) -> Answer:
        t0 = time.perf_counter()
        res = self.retriever.search(question, k=k, cities=cities, years=years, mode=mode)
        t1 = time.perf_counter()
        ans = self.extractive.answer(res.query, res.hits)
        t2 = time.perf_counter()
        ans.hits = res.hits
        ans.filters = {"cities": res.query.cities, "years": res.query.years, "comparative": res.query.comparative}
        ans.timings_ms = {**{f"retrieve.{k}": v for k, v in res.timings_ms.items()}, "retrieve": (t1 - t0) * 1000, "answer": (t2 - t1) * 1000, "total": (t2 - t0) * 1000}
        return ans
