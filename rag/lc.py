"""LangChain adapter: the project's retriever as a `BaseRetriever`, chunks as LangChain `Document`s."""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever

from .types import Hit


def hit_to_document(hit: Hit) -> LCDocument:
    c = hit.chunk
    return LCDocument(
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

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[LCDocument]:
        res = self.retriever.search(query, k=kwargs.get("k", self.k), cities=kwargs.get("cities"), years=kwargs.get("years"))
        return [hit_to_document(h) for h in res.hits]
