"""The index behind one interface: `IndexStore` (the writer's and the opener's side) and `Snapshot` (what a
reader searches), with two implementations:

- `faiss` (default, rag/index.py): FAISS + bm25s + a JSONL chunk store in immutable generations on local disk;
- `milvus` (rag/milvus_store.py): a Milvus collection with a dense vector field, a BM25 sparse field made by
  Milvus's BM25 function (jieba analyzer with the project's domain words) and scalar fields for city, year and
  document; Milvus Lite embedded for a path URI, Milvus standalone/cluster for http(s)://HOST:19530.

The retriever's fusion and re-ranking run on the candidates either backend returns: row ids (ints) that index
`Snapshot.chunks`. `open_store(settings)` picks the backend from `[index] backend` (env RAG_INDEX_BACKEND).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from .config import Settings
from .types import Chunk, DocMeta

BACKENDS = ("faiss", "milvus")


@runtime_checkable
class Snapshot(Protocol):
    """One consistent state of the index, as a reader sees it."""

    backend: str
    name: str  # generation (faiss) or generation counter (milvus): changes whenever a writer publishes
    manifest: dict
    docs: dict[str, DocMeta]
    chunks: Sequence[Chunk]  # row id -> Chunk; len() is the number of passages

    def rows_of(self, doc_id: str) -> list[int]: ...

    def filter_rows(self, cities: list[str] | None = None, years: list[str] | None = None, doc_ids: list[str] | None = None) -> Any:
        """What passes the filters, in this backend's terms (row ids, or a filter expression)."""

    def search_dense(self, qvec: np.ndarray, allowed: Any, n: int) -> list[tuple[int, float]]: ...

    def search_lexical(self, tokens: list[str], allowed: Any, n: int) -> list[tuple[int, float]]: ...

    def document_frequencies(self) -> dict[str, int]: ...


@dataclass
class DocChange:
    """One document to add or replace: its metadata, its passages and their vectors and BM25 tokens."""

    meta: DocMeta
    chunks: list[Chunk]
    vectors: np.ndarray  # (len(chunks), dim) float32, L2-normalised
    tokens: list[list[str]] = field(default_factory=list)  # rag.textproc.tokenize(chunk.context_text()) per chunk


@runtime_checkable
class IndexStore(Protocol):
    backend: str

    def exists(self) -> bool: ...

    def current_name(self) -> str | None: ...

    def signature(self) -> Any:
        """Cheap to call often; changes whenever a writer publishes. None: no index."""

    def read_manifest(self) -> dict | None: ...

    def load(self, expect_embedder: str | None = None) -> Snapshot: ...

    def stats(self) -> dict: ...


def open_store(settings: Settings):
    """The configured backend's store for settings.index_dir (faiss) or settings.index.uri (milvus)."""
    backend = (settings.index.backend or "faiss").lower()
    if backend == "faiss":
        from .index import FaissStore

        return FaissStore(settings.index_dir)
    if backend == "milvus":
        from .milvus_store import MilvusStore  # pymilvus is imported only here

        return MilvusStore(settings)
    from .config import ConfigError

    raise ConfigError(f"unknown index backend '{settings.index.backend}' (choose one of: {', '.join(BACKENDS)})")
