"""LangChain adapter: the project's retriever as a `BaseRetriever`, chunks as LangChain `Document`s.

Conforms to LangChain's standard retriever suite (`langchain_tests.integration_tests.RetrieversIntegrationTests`,
tests/test_langchain_standard.py): `k` is the number of documents returned, as a constructor field and as an
invoke keyword, for every kind of question — a comparative question (哪些城市…) is searched as the project
searches it (the best passages of every relevant document) and then cut to `k`.
"""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import field_validator

from .retriever import check_k
from .types import Hit

__all__ = ["RagLangChainRetriever", "hit_to_document", "check_k"]


def hit_to_document(hit: Hit) -> LCDocument:
    c = hit.chunk
    return LCDocument(
        id=c.chunk_id,
        page_content=c.text,
        metadata={
            "chunk_id": c.chunk_id,
            "doc_id": c.doc_id,
            "city": c.city,
            "title": c.title,
            "issuer": c.issuer,
            "date": c.date,
            "section": c.section,
            "score": hit.score,
            "rank": hit.rank,
        },
    )


class RagLangChainRetriever(BaseRetriever):
    """`Retriever.search` behind LangChain's retriever interface (filters via `cities=`/`years=` kwargs)."""

    retriever: Any
    k: int = 5

    @field_validator("k", mode="before")
    @classmethod
    def _valid_k(cls, v: Any) -> int:
        return check_k(v)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[LCDocument]:
        k = check_k(kwargs["k"]) if kwargs.get("k") is not None else self.k
        if k == 0:
            return []
        res = self.retriever.search(query, k=k, cities=kwargs.get("cities"), years=kwargs.get("years"))
        # comparative questions come back with every relevant document's passages (what the answerer needs);
        # a LangChain caller asked for k documents
        return [hit_to_document(h) for h in res.hits[:k]]
