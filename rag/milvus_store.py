"""The Milvus backend of rag.store.IndexStore: Milvus Lite embedded for a path URI (tests, one machine),
Milvus standalone or cluster for http(s)://HOST:19530 (token from the environment variable named by
`[index] token_env`). Same code path for both.

Collections (prefix `[index] collection`, default `rag`):

    rag_chunks  id INT64 (row id, from chunk id + document hash), chunk_id, doc_id, doc_hash, city, year, ordinal,
                text (the passage), meta (JSON: section path, title, issuer, date), lex (the text that is
                BM25-indexed: the passage with its context, NFKC, lower case), dense FLOAT_VECTOR (normalised,
                metric IP), sparse SPARSE_FLOAT_VECTOR made from `lex` by Milvus's BM25 function with a jieba
                analyzer holding the project's domain words (rag/data/userdict.txt) and stop words
    rag_docs    key (doc_id@batch), doc_id, batch, deleted, content_hash, meta (DocMeta JSON), chunks, terms
                (passages per term, for idf): one row per version of a document, written by batch `batch`
    rag_meta    `commit-<batch>` rows (the batch number and the manifest: format, embedder, dim, parsing), `pending`

Milvus has no multi-row or multi-collection transactions (upsert, delete and insert each apply on their own;
one call's rows share one timestamp), so a batch of documents is made atomic with a commit record:
1. `pending` = the batch's documents and their new hashes (for recovery);
2. the new passages are inserted (row ids depend on the document hash: they never overwrite the old ones);
3. the batch's document rows are inserted with the batch's number B (a deleted document gets a tombstone
   row), next to the committed ones, which stay;
4. the commit: one row `commit-B` is inserted into rag_meta. Readers take the highest committed batch W and,
   per document, its row with the highest batch <= W: before this single-row insert they see the whole batch
   as before, after it the whole batch as after;
5. clean-up: the batch's documents' older rows, their old passages, older commit rows; `pending` cleared.
A reader keeps only passages whose doc_hash is its snapshot's hash of that document. The next writer first
removes what a crashed one left (`recover`: document rows of batches above W, passages of pending documents
that are not their committed version).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .config import Settings
from .index import IncompatibleIndex, IndexError_
from .types import Chunk, DocMeta


def _step(name: str) -> None:
    """A point between two writes of a batch. Does nothing; the failure-injection tests make it raise."""


FORMAT_VERSION = 2  # of the Milvus collections (2: versioned document rows + commit records; the faiss backend has its own, rag.index.FORMAT_VERSION)

TOPK_MAX = 16384  # Milvus's limit on one search's limit
MAX_VARCHAR = 65535
_CHUNK_FIELDS = ["id", "chunk_id", "doc_id", "doc_hash", "ordinal", "text", "meta", "city"]
_CLIENTS: dict[tuple[str, str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_LOCAL_WRITES: dict[tuple[str, str], int] = {}  # writes made by this process, per (uri, collection): seen at once


def _lit(s: str) -> str:
    """A string literal for a Milvus boolean expression (JSON escaping is what its parser accepts)."""
    return json.dumps(str(s), ensure_ascii=False)


def _list(xs) -> str:
    return "[" + ", ".join(_lit(x) for x in xs) + "]"


def row_id(chunk_id: str, doc_hash: str) -> int:
    """A stable non-negative int64 per (passage, document version)."""
    return int.from_bytes(hashlib.blake2b(f"{chunk_id}|{doc_hash}".encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") & 0x7FFF_FFFF_FFFF_FFFF


def lex_text(chunk: Chunk) -> str:
    """What the engine's analyzer tokenizes: the same string rag.textproc.tokenize starts from (NFKC, lower)."""
    return unicodedata.normalize("NFKC", chunk.context_text()).lower()


def analyzer_params() -> dict:
    """jieba (search mode, like rag.textproc.tokenize's cut_for_search) with the domain dictionary's words and
    the project's stop words, punctuation removed."""
    from .textproc import STOPWORDS, domain_terms

    return {
        "tokenizer": {"type": "jieba", "dict": ["_default_", *sorted(domain_terms())], "mode": "search", "hmm": True},
        "filter": ["lowercase", "removepunct", {"type": "stop", "stop_words": sorted(STOPWORDS)}],
    }


class _NoLiteMvcc(logging.Filter):
    """Milvus Lite has no MVCC timestamp for query iterators; pymilvus warns on every one (harmless: Lite is one process)."""

    def filter(self, record: logging.LogRecord) -> bool:
        m = record.getMessage()
        return "mvccTs" not in m and "Method not implemented" not in m


def client_for(settings: Settings):
    """One MilvusClient per (uri, db, token) in this process."""
    from pymilvus import MilvusClient

    logging.getLogger("pymilvus").addFilter(_NoLiteMvcc())
    logging.getLogger("grpc._server").addFilter(_NoLiteMvcc())  # Lite's in-process server: AllocTimestamp
    for h in logging.getLogger("pymilvus").handlers:
        h.addFilter(_NoLiteMvcc())

    cfg = settings.index
    uri = resolve_uri(settings)
    token = os.environ.get(cfg.token_env, "") if cfg.token_env and not _is_local(uri) else ""
    key = (uri, cfg.db_name, token)
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(key)
        if c is None:
            if _is_local(uri):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                c = MilvusClient(uri=uri, token=token, db_name=cfg.db_name) if cfg.db_name else MilvusClient(uri=uri, token=token)
            except Exception as e:
                raise IndexError_(f"cannot reach Milvus at {uri}: {type(e).__name__}: {e}") from e
            _CLIENTS[key] = c
        return c


def _is_local(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def resolve_uri(settings: Settings) -> str:
    """A relative path is taken inside the index directory (default: vectorstore/milvus.db)."""
    uri = settings.index.uri or "milvus.db"
    if not _is_local(uri):
        return uri
    p = Path(uri)
    return str(p if p.is_absolute() else Path(settings.index_dir) / p)


@dataclass(frozen=True)
class MilvusFilter:
    expr: str  # a Milvus boolean expression over city, year, doc_id


class MilvusChunks(Sequence):
    """Row id -> Chunk, fetched on demand (and filled by every search's output fields): a reader never holds
    the whole collection in memory."""

    def __init__(self, snap: "MilvusSnapshot"):
        self._snap = snap
        self._cache: dict[int, Chunk] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._snap.chunk_count

    def __bool__(self) -> bool:
        return self._snap.chunk_count > 0

    def put(self, row: int, chunk: Chunk) -> None:
        self._cache[row] = chunk

    def __getitem__(self, row):  # type: ignore[override]
        if isinstance(row, slice):
            raise TypeError("MilvusChunks are addressed by row id, not sliced")
        row = int(row)
        c = self._cache.get(row)
        if c is None:
            got = self._snap.fetch([row])
            if row not in got:
                raise KeyError(f"no passage with row id {row} in {self._snap.name}")
            c = got[row]
        return c

    def __iter__(self) -> Iterator[Chunk]:
        for d in sorted(self._snap.docs):
            for r in self._snap.rows_of(d):
                yield self[r]


def _chunk_from(e: dict) -> Chunk:
    m = json.loads(e.get("meta") or "{}")
    return Chunk(
        chunk_id=e["chunk_id"], doc_id=e["doc_id"], ordinal=int(e.get("ordinal", 0)), text=e.get("text", ""),
        section_path=list(m.get("section_path") or []), city=e.get("city", ""), title=m.get("title", ""),
        issuer=m.get("issuer", ""), date=m.get("date", ""),
    )


@dataclass
class MilvusSnapshot:
    """rag.store.Snapshot over Milvus: the documents (and their hashes) as of `name`; passages are searched live
    and kept only when they belong to that version of their document."""

    store: "MilvusStore"
    name: str
    manifest: dict
    docs: dict[str, DocMeta]
    hashes: dict[str, str]
    chunk_counts: dict[str, int]
    backend: str = "milvus"
    _rows: dict[str, list[int]] = field(default_factory=dict)
    _df: dict[str, int] | None = None

    def __post_init__(self):
        self.chunks = MilvusChunks(self)
        self.chunk_count = sum(self.chunk_counts.values())
        self.path = Path(self.store.uri) if _is_local(self.store.uri) else Path(self.store.settings.index_dir)

    # -------------------------------------------------------------- rows
    def _keep(self, e: dict) -> bool:
        return self.hashes.get(e.get("doc_id")) == e.get("doc_hash")

    def fetch(self, rows: list[int]) -> dict[int, Chunk]:
        out: dict[int, Chunk] = {}
        c = self.store.client
        for i in range(0, len(rows), 1000):
            part = [int(r) for r in rows[i : i + 1000]]
            for e in c.query(self.store.chunks_name, filter=f"id in {part}", output_fields=_CHUNK_FIELDS):
                if self._keep(e):
                    ch = _chunk_from(e)
                    self.chunks.put(int(e["id"]), ch)
                    out[int(e["id"])] = ch
        return out

    def rows_of(self, doc_id: str) -> list[int]:
        rows = self._rows.get(doc_id)
        if rows is None:
            h = self.hashes.get(doc_id)
            if h is None:
                return []
            got = self.store.client.query(
                self.store.chunks_name, filter=f"doc_id == {_lit(doc_id)} and doc_hash == {_lit(h)}", output_fields=_CHUNK_FIELDS, limit=16384
            )
            got.sort(key=lambda e: int(e["ordinal"]))
            rows = []
            for e in got:
                self.chunks.put(int(e["id"]), _chunk_from(e))
                rows.append(int(e["id"]))
            self._rows[doc_id] = rows
        return rows

    # -------------------------------------------------------------- filters and searches
    def filter_rows(self, cities: list[str] | None = None, years: list[str] | None = None, doc_ids: list[str] | None = None) -> MilvusFilter:
        parts = []
        if cities:
            parts.append(f"city in {_list(cities)}")
        if years:
            ys = sorted({int(y) for y in years if str(y).isdigit()})
            parts.append(f"year in {ys}" if ys else "year == -1")
        if doc_ids:
            parts.append(f"doc_id in {_list(doc_ids)}")
        return MilvusFilter(" and ".join(parts) if parts else "id >= 0")

    def _hits(self, res) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        for h in res[0] if res else []:
            e = h.get("entity") or {}
            e.setdefault("id", h.get("id"))
            if not self._keep(e):
                continue  # a passage of another version of its document (an ingest is running, or crashed)
            row = int(h["id"])
            self.chunks.put(row, _chunk_from(e))
            out.append((row, float(h["distance"])))
        return out

    def search_dense(self, qvec: np.ndarray, allowed: MilvusFilter | None, n: int) -> list[tuple[int, float]]:
        n = min(int(n), TOPK_MAX, max(self.chunk_count, 1))
        if n <= 0 or not self.chunk_count:
            return []
        res = self.store.client.search(
            self.store.chunks_name, data=[np.asarray(qvec, dtype=np.float32).tolist()], anns_field="dense", limit=n,
            filter=allowed.expr if allowed is not None else "", output_fields=_CHUNK_FIELDS[1:], search_params={"metric_type": "IP"},
        )
        return self._hits(res)

    def search_lexical(self, tokens: list[str], allowed: MilvusFilter | None, n: int) -> list[tuple[int, float]]:
        n = min(int(n), TOPK_MAX, max(self.chunk_count, 1))
        text = " ".join(tokens).strip()
        if n <= 0 or not text or not self.chunk_count:
            return []
        res = self.store.client.search(
            self.store.chunks_name, data=[text], anns_field="sparse", limit=n, filter=allowed.expr if allowed is not None else "",
            output_fields=_CHUNK_FIELDS[1:], search_params={"metric_type": "BM25"},
        )
        # Milvus Lite reports BM25 scores negated (best first, most negative); Milvus standalone positive
        return [(r, abs(s)) for r, s in self._hits(res) if s != 0]

    def search_hybrid(self, qvec: np.ndarray, tokens: list[str], allowed: MilvusFilter | None, n: int, rrf_k: int = 60) -> list[tuple[int, float]]:
        """The engine's own fusion (hybrid_search + RRFRanker), for the benchmark. The filter goes into each
        AnnSearchRequest's expr, as Milvus documents it: given to hybrid_search itself it is ignored by Milvus
        Lite, which then returns rows outside the filter (tests/test_milvus.py, README)."""
        from pymilvus import AnnSearchRequest, RRFRanker

        n = min(int(n), TOPK_MAX)
        expr = allowed.expr if allowed is not None else ""
        reqs = [
            AnnSearchRequest(data=[np.asarray(qvec, dtype=np.float32).tolist()], anns_field="dense", param={"metric_type": "IP"}, limit=n, expr=expr),
            AnnSearchRequest(data=[" ".join(tokens) or "∅"], anns_field="sparse", param={"metric_type": "BM25"}, limit=n, expr=expr),
        ]
        res = self.store.client.hybrid_search(self.store.chunks_name, reqs=reqs, ranker=RRFRanker(rrf_k), limit=n, output_fields=_CHUNK_FIELDS[1:])
        return self._hits(res)

    def document_frequencies(self) -> dict[str, int]:
        if self._df is None:
            df: Counter = Counter()
            for e in self.store.iter_docs(["doc_id", "content_hash", "terms"], upto=self.manifest.get("batch")):
                if self.hashes.get(e["doc_id"]) != e["content_hash"]:
                    continue
                for line in (e.get("terms") or "").split("\n"):
                    t, _, n = line.rpartition("\t")
                    if t:
                        df[t] += int(n)
            self._df = dict(df)
        return self._df


class MilvusStore:
    """rag.store.IndexStore over Milvus (Lite or a server)."""

    backend = "milvus"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = resolve_uri(settings)
        self.dir = Path(settings.index_dir)  # lock file, embedding cache, feedback stay here
        p = settings.index.collection or "rag"
        self.chunks_name, self.docs_name, self.meta_name = f"{p}_chunks", f"{p}_docs", f"{p}_meta"
        self._client = None
        self._sig: tuple[float, Any] = (0.0, None)
        self._local_writes = 0
        self._loaded: set[str] = set()

    # -------------------------------------------------------------- connection and collections
    @property
    def client(self):
        if self._client is None:
            self._client = client_for(self.settings)
        return self._client

    def _has(self, name: str) -> bool:
        try:
            return bool(self.client.has_collection(name))
        except IndexError_:
            raise
        except Exception as e:
            raise IndexError_(f"Milvus at {self.uri} did not answer: {type(e).__name__}: {e}") from e

    def _ensure_loaded(self, name: str) -> None:
        if name not in self._loaded:
            self.client.load_collection(name)
            self._loaded.add(name)

    def _create(self, dim: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self.client
        if not c.has_collection(self.meta_name):
            s = c.create_schema(auto_id=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
            s.add_field("value", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector field in every collection
            ip = c.prepare_index_params()
            ip.add_index(field_name="v", index_type="FLAT", metric_type="L2")
            c.create_collection(self.meta_name, schema=s, index_params=ip, consistency_level="Strong")
        if not c.has_collection(self.docs_name):
            s = c.create_schema(auto_id=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=600)
            s.add_field("doc_id", DataType.VARCHAR, max_length=512)
            s.add_field("batch", DataType.INT64)
            s.add_field("deleted", DataType.BOOL)
            s.add_field("content_hash", DataType.VARCHAR, max_length=128)
            s.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("chunks", DataType.INT64)
            s.add_field("terms", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
            ip = c.prepare_index_params()
            ip.add_index(field_name="v", index_type="FLAT", metric_type="L2")
            c.create_collection(self.docs_name, schema=s, index_params=ip, consistency_level="Strong")
        if not c.has_collection(self.chunks_name):
            s = c.create_schema(auto_id=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("chunk_id", DataType.VARCHAR, max_length=1024)
            s.add_field("doc_id", DataType.VARCHAR, max_length=512)
            s.add_field("doc_hash", DataType.VARCHAR, max_length=128)
            s.add_field("city", DataType.VARCHAR, max_length=128)
            s.add_field("year", DataType.INT64)
            s.add_field("ordinal", DataType.INT64)
            s.add_field("text", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("meta", DataType.VARCHAR, max_length=MAX_VARCHAR)
            s.add_field("lex", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True, enable_match=True, analyzer_params=analyzer_params())
            s.add_field("dense", DataType.FLOAT_VECTOR, dim=int(dim))
            s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            s.add_function(Function(name="lex_bm25", function_type=FunctionType.BM25, input_field_names=["lex"], output_field_names=["sparse"]))
            ip = c.prepare_index_params()
            # AUTOINDEX: Milvus picks the dense index (HNSW-like on a server, FLAT/IVF in Lite)
            ip.add_index(field_name="dense", index_type="AUTOINDEX", metric_type="IP")
            ip.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25", params={"bm25_k1": 1.2, "bm25_b": 0.75})
            for f in ("city", "doc_id", "year"):
                ip.add_index(field_name=f, index_type="INVERTED")
            c.create_collection(self.chunks_name, schema=s, index_params=ip, consistency_level="Strong")
        for n in (self.meta_name, self.docs_name, self.chunks_name):
            self._ensure_loaded(n)

    # -------------------------------------------------------------- meta rows
    def _get_meta(self, key: str) -> Any:
        self._ensure_loaded(self.meta_name)
        got = self.client.query(self.meta_name, filter=f"key == {_lit(key)}", output_fields=["value"])
        return json.loads(got[0]["value"]) if got else None

    def _put_meta(self, items: dict[str, Any]) -> None:
        self.client.upsert(self.meta_name, [{"key": k, "value": json.dumps(v, ensure_ascii=False), "v": [0.0, 0.0]} for k, v in items.items()])

    def committed(self) -> tuple[int, dict | None]:
        """The highest committed batch and its manifest ((0, None): nothing committed)."""
        self._ensure_loaded(self.meta_name)
        got = self.client.query(self.meta_name, filter='key like "commit-%"', output_fields=["key", "value"])
        if not got:
            return 0, None
        top = max(got, key=lambda e: e["key"])  # commit-<12 digits>: the string order is the number order
        v = json.loads(top["value"])
        return int(v["batch"]), v.get("manifest")

    # -------------------------------------------------------------- reading (rag.store.IndexStore)
    def exists(self) -> bool:
        return self._has(self.meta_name) and self.committed()[1] is not None

    def current_name(self) -> str | None:
        if not self._has(self.meta_name):
            return None
        w, m = self.committed()
        return None if m is None else f"milvus-{w:06d}"

    def signature(self):
        """The committed batch, read at most every 0.5 s (the retriever asks hundreds of times a question)."""
        t, sig = self._sig
        now = time.monotonic()
        local = _LOCAL_WRITES.get((self.uri, self.chunks_name), 0)
        if now - t > 0.5 or local != self._local_writes:
            self._local_writes = local
            try:
                sig = self.current_name()
            except Exception:
                sig = None
            self._sig = (now, sig)
        return sig

    def read_manifest(self) -> dict | None:
        if not self._has(self.meta_name):
            return None
        w, m = self.committed()
        return None if m is None else {**m, "generation": f"milvus-{w:06d}"}

    def iter_docs(self, fields: list[str], upto: int | None = None) -> Iterator[dict]:
        """The documents as of batch `upto` (default: the last committed): per document its row of the highest
        batch <= upto; tombstones (deleted documents) left out."""
        self._ensure_loaded(self.docs_name)
        if upto is None:
            upto = self.committed()[0]
        want = list(dict.fromkeys([*fields, "doc_id", "batch", "deleted"]))
        latest: dict[str, dict] = {}
        it = self.client.query_iterator(self.docs_name, batch_size=1000, filter=f"batch <= {int(upto)}", output_fields=want)
        try:
            while True:
                batch = it.next()
                if not batch:
                    break
                for e in batch:
                    cur = latest.get(e["doc_id"])
                    if cur is None or int(e["batch"]) > int(cur["batch"]):
                        latest[e["doc_id"]] = e
        finally:
            it.close()
        for e in latest.values():
            if not e.get("deleted"):
                yield e

    def doc_states(self) -> dict[str, DocMeta]:
        out = {}
        for e in self.iter_docs(["doc_id", "content_hash", "meta", "chunks"]):
            out[e["doc_id"]] = DocMeta(**{**json.loads(e["meta"]), "content_hash": e["content_hash"]})
        return out

    def load(self, expect_embedder: str | None = None) -> MilvusSnapshot:
        for _attempt in range(5):  # a writer committing while the documents are read: read them again
            try:
                w, manifest = self.committed() if self._has(self.meta_name) else (0, None)
            except IndexError_:
                raise
            except Exception as e:
                raise IndexError_(f"Milvus index at {self.uri} is unreadable ({type(e).__name__}: {e})") from e
            if manifest is None:
                raise IndexError_(f"no index at {self.uri} (backend milvus): build one with `rag ingest data/replies` (or pass --index DIR)")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IncompatibleIndex(f"index at {self.uri} has format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}")
            if expect_embedder and manifest.get("embedder") != expect_embedder:
                raise IncompatibleIndex(
                    f"index at {self.uri} was built with embedder '{manifest.get('embedder')}', but '{expect_embedder}' is configured: "
                    f"scores would be meaningless. Use another [index] collection (or configure the original embedder)."
                )
            for n in (self.docs_name, self.chunks_name):
                self._ensure_loaded(n)
            docs, hashes, counts = {}, {}, {}
            for e in self.iter_docs(["doc_id", "content_hash", "meta", "chunks"], upto=w):
                docs[e["doc_id"]] = DocMeta(**{**json.loads(e["meta"]), "content_hash": e["content_hash"]})
                hashes[e["doc_id"]] = e["content_hash"]
                counts[e["doc_id"]] = int(e["chunks"])
            if self.committed()[0] == w:
                break
        name = f"milvus-{w:06d}"
        manifest = {**manifest, "generation": name, "batch": w, "chunk_count": sum(counts.values()),
                    "documents": {d: {"content_hash": m.content_hash, "path": m.path, "chunks": counts[d]} for d, m in docs.items()}}
        return MilvusSnapshot(self, name, manifest, docs, hashes, counts)

    def stats(self) -> dict:
        m = self.read_manifest() or {}
        rows = 0
        if self._has(self.chunks_name):
            self._ensure_loaded(self.chunks_name)
            rows = int(self.client.query(self.chunks_name, filter="", output_fields=["count(*)"])[0]["count(*)"])
        disk = 0
        if _is_local(self.uri) and Path(self.uri).exists():
            p = Path(self.uri)
            disk = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        return {"backend": "milvus", "uri": self.uri, "generation": m.get("generation"), "rows": rows, "disk_bytes": disk}

    # -------------------------------------------------------------- writing
    def recover(self) -> list[str]:
        """Remove what a writer that died mid-batch left: document rows of uncommitted batches, and for the pending
        documents every row and passage that is not their committed version (a batch that died after its commit
        gets its clean-up done). Returns the documents cleaned."""
        if not self._has(self.meta_name):
            return []
        w, _ = self.committed()
        self._ensure_loaded(self.docs_name)
        self.client.delete(self.docs_name, filter=f"batch > {w}")
        pending = self._get_meta("pending") or {}
        if not pending:
            return []
        self._gc(sorted(pending), w)
        self._put_meta({"pending": {}})
        return sorted(pending)

    def _gc(self, doc_ids: list[str], upto: int) -> None:
        """For these documents, keep only their version as of batch `upto`: older document rows, tombstones and
        the passages of other versions go."""
        latest: dict[str, dict] = {}
        for i in range(0, len(doc_ids), 200):
            part = doc_ids[i : i + 200]
            for e in self.client.query(self.docs_name, filter=f"doc_id in {_list(part)} and batch <= {int(upto)}",
                                       output_fields=["doc_id", "batch", "deleted", "content_hash"], limit=16384):
                cur = latest.get(e["doc_id"])
                if cur is None or int(e["batch"]) > int(cur["batch"]):
                    latest[e["doc_id"]] = e
        for d in doc_ids:
            e = latest.get(d)
            if e is None:
                continue
            self.client.delete(self.docs_name, filter=f"doc_id == {_lit(d)} and batch {'<=' if e.get('deleted') else '<'} {int(e['batch'])}")
        keep = {d: e["content_hash"] for d, e in latest.items() if not e.get("deleted")}
        self._delete_stale(doc_ids, keep)

    def _delete_stale(self, doc_ids: list[str], keep: dict[str, str]) -> None:
        """Delete the passages of doc_ids that are not the version in keep (all of them when absent)."""
        for i in range(0, len(doc_ids), 50):
            clauses = []
            for d in doc_ids[i : i + 50]:
                h = keep.get(d)
                clauses.append(f'(doc_id == {_lit(d)} and doc_hash != {_lit(h)})' if h else f"doc_id == {_lit(d)}")
            self.client.delete(self.chunks_name, filter=" or ".join(clauses))

    def apply(self, embedder_identity: str, dim: int, changes: list, deletes: list[str], extra: dict | None = None) -> str:
        """Upsert documents (rag.store.DocChange) and delete documents, in batches of [index] batch_docs; each
        batch commits as one (module docstring). Returns the new generation's name."""
        if self._has(self.meta_name):
            m = self.committed()[1]
            if m and m.get("embedder") != embedder_identity:
                raise IncompatibleIndex(f"index at {self.uri} was built with embedder '{m.get('embedder')}', not '{embedder_identity}'")
            if m and int(m.get("dim", dim)) != int(dim):
                raise IncompatibleIndex(f"index at {self.uri} has dimension {m.get('dim')}, the embedder {dim}")
        self._create(dim)
        self.recover()
        w, _ = self.committed()
        manifest = {"format_version": FORMAT_VERSION, "embedder": embedder_identity, "dim": int(dim), "backend": "milvus",
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {})}
        ops: list[tuple[str, Any]] = [("upsert", ch) for ch in changes] + [("delete", d) for d in deletes]
        step = max(1, int(self.settings.index.batch_docs))
        batches = [ops[i : i + step] for i in range(0, len(ops), step)] or [[]]  # nothing to write: one commit of the manifest
        for batch in batches:
            b = w + 1
            ups = [x for op, x in batch if op == "upsert"]
            dels = [x for op, x in batch if op == "delete"]
            self._put_meta({"pending": {**{ch.meta.doc_id: ch.meta.content_hash for ch in ups}, **{d: None for d in dels}}})
            _step("milvus:pending")
            rows = []
            for ch in ups:
                for c, v in zip(ch.chunks, ch.vectors):
                    rows.append(self._chunk_row(c, ch.meta, v))
                    if len(rows) >= 500:
                        self.client.insert(self.chunks_name, rows)
                        _step("milvus:passages-part")
                        rows = []
            if rows:
                self.client.insert(self.chunks_name, rows)
            _step("milvus:passages")
            doc_rows = [self._doc_row(ch, b) for ch in ups] + [self._tombstone_row(d, b) for d in dels]
            for i in range(0, len(doc_rows), 500):
                self.client.insert(self.docs_name, doc_rows[i : i + 500])
                _step("milvus:documents-part")
            _step("milvus:documents")
            # the commit: one row, one insert
            self.client.insert(self.meta_name, [{"key": f"commit-{b:012d}", "value": json.dumps({"batch": b, "manifest": manifest}, ensure_ascii=False), "v": [0.0, 0.0]}])
            w = b
            _step("milvus:committed")
            self._gc([ch.meta.doc_id for ch in ups] + dels, b)
            self.client.delete(self.meta_name, filter=f'key like "commit-%" and key < {_lit(f"commit-{b - 1:012d}")}')  # keep the last two
            self._put_meta({"pending": {}})
            _step("milvus:cleaned")
            key = (self.uri, self.chunks_name)
            _LOCAL_WRITES[key] = _LOCAL_WRITES.get(key, 0) + 1
        self._sig = (0.0, None)
        return f"milvus-{w:06d}"

    @staticmethod
    def _chunk_row(c: Chunk, meta: DocMeta, v) -> dict:
        y = meta.year
        return {
            "id": row_id(c.chunk_id, meta.content_hash), "chunk_id": c.chunk_id, "doc_id": c.doc_id, "doc_hash": meta.content_hash,
            "city": c.city or "", "year": int(y) if y.isdigit() else 0, "ordinal": int(c.ordinal), "text": _cap(c.text),
            "meta": _cap(json.dumps({"section_path": c.section_path, "title": c.title, "issuer": c.issuer, "date": c.date}, ensure_ascii=False)),
            "lex": _cap(lex_text(c)), "dense": np.asarray(v, dtype=np.float32).tolist(),
        }

    @staticmethod
    def _doc_row(ch, batch: int) -> dict:
        df: Counter = Counter()
        for toks in ch.tokens:
            df.update(set(toks))
        return {"key": f"{ch.meta.doc_id}@{batch:012d}", "doc_id": ch.meta.doc_id, "batch": int(batch), "deleted": False,
                "content_hash": ch.meta.content_hash, "meta": _cap(json.dumps(ch.meta.to_dict(), ensure_ascii=False)),
                "chunks": len(ch.chunks), "terms": _terms(df), "v": [0.0, 0.0]}

    @staticmethod
    def _tombstone_row(doc_id: str, batch: int) -> dict:
        return {"key": f"{doc_id}@{batch:012d}", "doc_id": doc_id, "batch": int(batch), "deleted": True, "content_hash": "",
                "meta": "{}", "chunks": 0, "terms": "", "v": [0.0, 0.0]}

    def drop(self) -> None:
        """Remove the collections (tests and benchmarks)."""
        for n in (self.chunks_name, self.docs_name, self.meta_name):
            if self.client.has_collection(n):
                self.client.drop_collection(n)
        self._loaded.clear()


def _cap(s: str, limit: int = MAX_VARCHAR) -> str:
    """At most `limit` UTF-8 bytes (Milvus's VARCHAR limit), cut at a character boundary."""
    b = s.encode("utf-8", "surrogatepass")
    return s if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


def _terms(df: Counter, limit: int = MAX_VARCHAR - 16) -> str:
    """'term<TAB>passages' lines, the most frequent first, within the VARCHAR limit (a document so long that its
    terms do not fit loses its rarest terms' counts: they then weigh as unseen terms)."""
    out, size = [], 0
    for t, n in sorted(df.items(), key=lambda x: (-x[1], x[0])):
        line = f"{t.replace(chr(9), ' ').replace(chr(10), ' ')}\t{n}"
        size += len(line.encode("utf-8", "surrogatepass")) + 1
        if size > limit:
            break
        out.append(line)
    return "\n".join(out)
