"""Stage 4b: the persisted index of the faiss backend: immutable segments, tombstones, generations.

Layout of an index directory:

    CURRENT                       -> {"generation": "gen-000007"}  (replaced atomically: os.replace)
    gen-000007/manifest.json      format, embedder, documents (content hash, path, chunks, segment), segments
                                  (name, rows, tombstoned documents and rows), counts
    gen-000007/docs.json          DocMeta per document
    segments/seg-000003/          one ingest's passages, never modified once written:
        segment.json                rows, dimension, the row range of each document
        chunks.jsonl                one Chunk per line, in row order
        vectors.npy                 float32 passage vectors (allow_pickle=False)
        dense.faiss                 FAISS inner-product index over them (flat, or HNSW from HNSW_THRESHOLD rows)
        bm25_terms.json             the segment's terms (sorted); bm25_indptr/rows/tf.npy: its postings (term
        bm25_*.npy                  -> rows, term frequency); bm25_doclen.npy: tokens per row
    cache/embeddings-*.sqlite     vectors by content hash, per embedder
    .ingest.lock                  held by the one ingest allowed at a time
    feedback.jsonl                thumbs up/down from the chat

Incremental: an ingest writes one new segment holding only the added or changed documents, and a new
generation whose manifest lists the segments and, per segment, its tombstones: the documents of that segment
that were replaced or removed since (a delete bitmap by document id; a document lives in exactly one segment).
A removal writes no segment, only tombstones. A merge (`compact`) folds segments into one without their
tombstoned rows: on demand (`rag compact`, `rag ingest --compact`) and automatically when there are more than
`[index] max_segments` segments or a segment's tombstoned share passes `[index] max_dead_fraction`.

Readers see one generation: the live rows of its segments in one row order (documents sorted by id, each
document's rows in order), the order a from-scratch build of the same documents has. Dense search runs per
segment (tombstoned rows excluded with a bitmap) and the candidates are merged by score. BM25 is scored from
each segment's postings with the statistics of the whole generation (live passages, document frequencies, mean
length), exactly as bm25s (Lucene variant, k1 1.2, b 0.75) scores one index built over the same passages.

Crash safety: segments and generations are written to temporary directories, fsynced and renamed, and only then
is CURRENT swapped; a crash at any point leaves the previous generation (and every segment it names) complete and
current. Nothing is ever pickled.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .types import Chunk, DocMeta

FORMAT_VERSION = 2  # 2: segments + tombstones (1: one FAISS + bm25s index per generation)
# Below this many vectors exact search is fast enough: one query costs ~0.07 ms per 1,000 vectors on a quiet
# 2-core machine (7 ms at 10^5, 72 ms at 10^6), 2-3x that on a busy one, while HNSW (M=32, efSearch=256)
# stays ~1 ms but costs ~0.3 s per 1,000 vectors to build (31 s at 10^5, 7 min at 10^6). Per segment.
# Figures: benchmarks/scale.py, README "Scaling".
HNSW_THRESHOLD = 100_000
# recall@10 against exact search at 10^6 chunks: 0.94 with efSearch 128, 0.99 with 256 (~1 ms a query)
HNSW_EF_SEARCH = 256
BM25_K1, BM25_B = 1.2, 0.75  # bm25s' defaults, Lucene variant
EMPTY_TOKEN = "\u2205"  # a passage without tokens keeps its row (bm25s would drop the document)
SMALL_FILTER = 4096  # filtered dense search over at most this many rows: exact scores straight from the vectors


class IndexError_(RuntimeError):
    """A missing, empty, corrupt or incompatible index. The message says what to do."""


class IncompatibleIndex(IndexError_):
    pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _step(name: str) -> None:
    """A point between two writes. Does nothing; the crash-injection tests make it raise (tests/test_segments.py)."""


def build_faiss(vectors: np.ndarray, hnsw_threshold: int = HNSW_THRESHOLD):
    import faiss

    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    if n >= hnsw_threshold:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = HNSW_EF_SEARCH
        index.add(vectors)
        return index
    index = faiss.IndexFlatIP(dim)
    if n:
        index.add(vectors)
    return index


def build_bm25(token_lists: list[list[str]]):
    """A bm25s index over the passages' tokens: the reference the segments' BM25 is tested against."""
    import bm25s

    bm = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    bm.index([t or [EMPTY_TOKEN] for t in token_lists], show_progress=False)
    return bm


@dataclass
class Postings:
    """A segment's BM25 postings: for term i, rows[indptr[i]:indptr[i+1]] (ascending) with their term frequency."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32
    tf: np.ndarray  # int32
    doclen: np.ndarray  # int32, tokens per row
    term_id: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if not self.term_id:
            self.term_id = {t: i for i, t in enumerate(self.terms)}

    @classmethod
    def from_tokens(cls, token_lists: list[list[str]]) -> "Postings":
        toks = [t or [EMPTY_TOKEN] for t in token_lists]
        n = len(toks)
        lens = np.fromiter((len(t) for t in toks), dtype=np.int64, count=n)
        terms = sorted({w for t in toks for w in t})
        tid = {w: i for i, w in enumerate(terms)}
        flat = np.fromiter((tid[w] for t in toks for w in t), dtype=np.int64, count=int(lens.sum()))
        rows = np.repeat(np.arange(n, dtype=np.int64), lens)
        return cls._from_triples(terms, flat, rows, np.ones(len(flat), dtype=np.int64), lens, n, tid)

    @classmethod
    def _from_triples(cls, terms, term_ids, rows, counts, doclen, n, tid=None) -> "Postings":
        """Postings from (term id, row, count) triples (repeated pairs are summed); terms left without a posting go."""
        key = term_ids.astype(np.int64) * max(n, 1) + rows.astype(np.int64)
        uniq, inv = np.unique(key, return_inverse=True)
        tf = np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int32) if len(uniq) else np.zeros(0, np.int32)
        t = uniq // max(n, 1)
        r = (uniq % max(n, 1)).astype(np.int32)
        per_term = np.bincount(t, minlength=len(terms)) if len(terms) else np.zeros(0, np.int64)
        if len(terms) and (per_term == 0).any():  # after a merge: terms only the tombstoned rows had
            keep = np.nonzero(per_term)[0]
            terms = [terms[i] for i in keep]
            per_term = per_term[keep]
            tid = None
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(per_term, out=indptr[1:])
        return cls(terms, indptr, r, tf, np.asarray(doclen, dtype=np.int32), tid or {})

    def live_df(self, live_rows: np.ndarray | None) -> np.ndarray:
        """Rows per term, counting only rows where live_rows is True (all rows when None)."""
        if live_rows is None:
            return np.diff(self.indptr)
        c = np.zeros(len(self.rows) + 1, dtype=np.int64)
        np.cumsum(live_rows[self.rows], out=c[1:])
        return c[self.indptr[1:]] - c[self.indptr[:-1]]


@dataclass
class Segment:
    """One immutable segment, loaded."""

    name: str
    path: Path
    chunks: list[Chunk]
    vectors: np.ndarray  # memory-mapped
    faiss_index: object
    doc_rows: dict[str, tuple[int, int]]  # document id -> [start, end) rows
    postings: Postings

    def __len__(self) -> int:
        return len(self.chunks)


def _load_segment(path: Path) -> Segment:
    import faiss

    meta = json.loads((path / "segment.json").read_text(encoding="utf-8"))
    with open(path / "chunks.jsonl", encoding="utf-8") as fh:
        chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
    # memory-mapped: FAISS holds its own copy for search; these rows are read only for small filtered
    # searches and by merges, so they need not occupy RAM (1.5 GB at 10^6 chunks, benchmarks/scale.py)
    vectors = np.load(path / "vectors.npy", allow_pickle=False, mmap_mode="r")
    findex = faiss.read_index(str(path / "dense.faiss"))
    if hasattr(findex, "hnsw"):
        findex.hnsw.efSearch = max(findex.hnsw.efSearch, HNSW_EF_SEARCH)
    terms = json.loads((path / "bm25_terms.json").read_text(encoding="utf-8"))
    post = Postings(
        terms,
        np.load(path / "bm25_indptr.npy", allow_pickle=False),
        np.load(path / "bm25_rows.npy", allow_pickle=False),
        np.load(path / "bm25_tf.npy", allow_pickle=False),
        np.load(path / "bm25_doclen.npy", allow_pickle=False),
    )
    n = int(meta["rows"])
    if not (len(chunks) == n == vectors.shape[0] == findex.ntotal == len(post.doclen)) or len(post.indptr) != len(terms) + 1:
        raise IndexError_(f"segment {path} is inconsistent ({len(chunks)} chunks, {vectors.shape[0]} vectors, {findex.ntotal} in FAISS, {meta['rows']} rows)")
    doc_rows = {d: (int(a), int(b)) for d, (a, b) in meta["docs"].items()}
    return Segment(path.name, path, chunks, vectors, findex, doc_rows, post)


@dataclass
class Generation:
    """One loaded, immutable state of the index: the live rows of its segments, in one row order."""

    path: Path
    manifest: dict
    docs: dict[str, DocMeta]
    segments: list[Segment]
    chunks: list[Chunk] = field(default_factory=list)
    backend = "faiss"

    def __post_init__(self):
        documents = self.manifest.get("documents") or {}
        index_of = {s.name: i for i, s in enumerate(self.segments)}
        entries = {e["name"]: e for e in self.manifest.get("segments") or []}
        self._glob = [np.full(len(s), -1, dtype=np.int64) for s in self.segments]  # segment row -> row (-1: tombstoned)
        self._ranges: dict[str, tuple[int, int]] = {}
        seg_parts, loc_parts = [], []
        total_len = 0
        for d in sorted(documents):
            sname = documents[d].get("segment")
            i = index_of.get(sname)
            if i is None or d not in self.segments[i].doc_rows:
                raise IndexError_(f"index at {self.path.parent} is inconsistent (document {d} not in segment {sname}); run `rag ingest --rebuild`")
            seg = self.segments[i]
            a, b = seg.doc_rows[d]
            start = len(self.chunks)
            self.chunks.extend(seg.chunks[a:b])
            self._glob[i][a:b] = np.arange(start, start + b - a)
            self._ranges[d] = (start, start + b - a)
            seg_parts.append(np.full(b - a, i, dtype=np.int32))
            loc_parts.append(np.arange(a, b, dtype=np.int64))
            total_len += int(seg.postings.doclen[a:b].sum())
        # the tombstones agree with the documents' segments: a document is live in exactly one segment
        for i, seg in enumerate(self.segments):
            dead = set((entries.get(seg.name) or {}).get("dead_docs") or [])
            live = {d for d in seg.doc_rows if documents.get(d, {}).get("segment") == seg.name}
            if set(seg.doc_rows) - dead != live:
                raise IndexError_(f"index at {self.path.parent} is inconsistent (tombstones of {seg.name}); run `rag ingest --rebuild`")
        self._seg_of_row = np.concatenate(seg_parts) if seg_parts else np.zeros(0, np.int32)
        self._local_of_row = np.concatenate(loc_parts) if loc_parts else np.zeros(0, np.int64)
        self._live = [g >= 0 for g in self._glob]
        self._all_live = [bool(m.all()) for m in self._live]
        self._bitmaps: dict[int, np.ndarray] = {}
        n = len(self.chunks)
        self.avgdl = total_len / n if n else 0.0
        self._df: dict[str, int] | None = None
        self._df_one: dict[str, int] = {}

    @property
    def name(self) -> str:
        return self.path.name

    def rows_of(self, doc_id: str) -> list[int]:
        a, b = self._ranges.get(doc_id, (0, 0))
        return list(range(a, b))

    def vectors_of(self, rows) -> np.ndarray:
        """The passage vectors of these rows (float32, one per row)."""
        rows = np.asarray(rows, dtype=np.int64)
        dim = int(self.manifest.get("dim") or (self.segments[0].vectors.shape[1] if self.segments else 0))
        out = np.empty((len(rows), dim), dtype=np.float32)
        segs, locs = self._seg_of_row[rows], self._local_of_row[rows]
        for i in np.unique(segs):
            m = segs == i
            out[m] = self.segments[int(i)].vectors[locs[m]]
        return out

    # ------------------------------------------------------------ the reader's side of rag.store.Snapshot
    def filter_rows(self, cities: list[str] | None = None, years: list[str] | None = None, doc_ids: list[str] | None = None) -> np.ndarray:
        """Row ids of the passages whose document passes every filter given (city, year, document id)."""
        ok_docs = [
            d
            for d, m in self.docs.items()
            if (not cities or m.city in cities) and (not years or (m.year and m.year in years)) and (not doc_ids or d in doc_ids)
        ]
        parts = [np.arange(*self._ranges[d], dtype=np.int64) for d in ok_docs if d in self._ranges]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _live_bitmap(self, i: int) -> np.ndarray:
        bm = self._bitmaps.get(i)
        if bm is None:
            bm = self._bitmaps[i] = np.packbits(self._live[i], bitorder="little")
        return bm

    def search_dense(self, qvec: np.ndarray, allowed: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        import faiss

        total = len(self.chunks)
        if allowed is not None and len(allowed) == 0:
            return []
        n = min(n, total if allowed is None else len(allowed))
        if n <= 0:
            return []
        if allowed is not None and len(allowed) <= SMALL_FILTER:  # small subset: exact scores straight from the vectors
            # elementwise, not `@`: a BLAS call leaves OpenBLAS threads spinning, which slows the next
            # query embedding 2-10x on a 2-core machine (benchmarks/scale.py, 5*10^4 chunks)
            allowed = np.asarray(allowed, dtype=np.int64)
            sims = (self.vectors_of(allowed) * qvec).sum(axis=1)
            top = np.lexsort((allowed, -sims))[:n]
            return [(int(allowed[i]), float(sims[i])) for i in top]
        mask = None
        if allowed is not None:
            mask = np.zeros(total, dtype=bool)
            mask[allowed] = True
        q = np.ascontiguousarray(qvec, dtype=np.float32).reshape(1, -1)
        found: list[tuple[int, float]] = []
        # one query gains nothing from OpenMP threads, and on a busy machine their barrier makes a flat search
        # 4x slower (79 vs 18 ms at 10^5, benchmarks/scale.py); the setting is per thread, restored after
        prev_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            for i, seg in enumerate(self.segments):
                glob = self._glob[i]
                index = seg.faiss_index
                if mask is None and self._all_live[i]:
                    k = min(n, len(seg))
                    D, I = index.search(q, k)
                else:
                    if mask is None:
                        ok, bitmap = self._live[i], self._live_bitmap(i)
                    else:
                        ok = self._live[i] & mask[np.maximum(glob, 0)]
                        bitmap = np.packbits(ok, bitorder="little")  # O(1) membership, 20x cheaper to build than a batch
                    k = min(n, int(ok.sum()))
                    if k == 0:
                        continue
                    sel = faiss.IDSelectorBitmap(len(ok), faiss.swig_ptr(bitmap))
                    if getattr(index, "storage", None) is not None and mask is not None:
                        # HNSW: graph search under a selective filter misses neighbours (recall@10 0.85 with 4% of the
                        # rows allowed, benchmarks/scale.py); its flat storage scanned with the filter is exact and fast
                        index = faiss.downcast_index(index.storage)
                    params = faiss.SearchParametersHNSW(sel=sel, efSearch=index.hnsw.efSearch) if hasattr(index, "hnsw") else faiss.SearchParameters(sel=sel)
                    D, I = index.search(q, k, params=params)
                found.extend((int(glob[j]), float(d)) for j, d in zip(I[0], D[0]) if j >= 0 and glob[j] >= 0)
        finally:
            faiss.omp_set_num_threads(prev_threads)
        found.sort(key=lambda t: (-t[1], t[0]))
        return found[:n]

    def df(self, term: str) -> int:
        """Live passages holding the term."""
        if self._df is not None:
            return self._df.get(term, 0)
        v = self._df_one.get(term)
        if v is None:
            v = 0
            for i, seg in enumerate(self.segments):
                t = seg.postings.term_id.get(term)
                if t is not None:
                    a, b = seg.postings.indptr[t], seg.postings.indptr[t + 1]
                    v += int(b - a) if self._all_live[i] else int(self._live[i][seg.postings.rows[a:b]].sum())
            self._df_one[term] = v
        return v

    def bm25_scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 of every row (float32), as bm25s scores an index built over this generation's live passages:
        Lucene idf log(1 + (N - df + 0.5) / (df + 0.5)) and tf / (tf + k1 (1 - b + b dl / avgdl)) with this
        generation's N, df and mean length; a query token counts as often as it is repeated."""
        n = len(self.chunks)
        scores = np.zeros(n, dtype=np.float32)
        if not n:
            return scores
        avgdl = np.float64(self.avgdl)
        for tok in tokens:
            df = self.df(tok)
            if df == 0:
                continue
            idf = np.float32(math.log(1 + (n - df + 0.5) / (df + 0.5)))
            for i, seg in enumerate(self.segments):
                p = seg.postings
                t = p.term_id.get(tok)
                if t is None:
                    continue
                a, b = p.indptr[t], p.indptr[t + 1]
                rows, tf = p.rows[a:b], p.tf[a:b]
                glob = self._glob[i][rows]
                if not self._all_live[i]:
                    keep = glob >= 0
                    rows, tf, glob = rows[keep], tf[keep], glob[keep]
                tf = tf.astype(np.float32)
                tfc = tf / (BM25_K1 * ((1 - BM25_B) + BM25_B * p.doclen[rows] / avgdl) + tf)
                scores[glob] += (idf * tfc).astype(np.float32)
        return scores

    def search_lexical(self, tokens: list[str], allowed: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        if not tokens or not self.chunks:
            return []
        scores = self.bm25_scores(tokens)
        if allowed is not None:
            mask = np.full(scores.shape, -1.0, dtype=np.float32)
            mask[allowed] = scores[allowed]
            scores = mask
        n = min(n, len(scores))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def document_frequencies(self) -> dict[str, int]:
        """Live passages per BM25 term, over every segment."""
        if self._df is None:
            df: dict[str, int] = {}
            for i, seg in enumerate(self.segments):
                counts = seg.postings.live_df(None if self._all_live[i] else self._live[i])
                for tok, c in zip(seg.postings.terms, counts.tolist()):
                    if c:
                        df[tok] = df.get(tok, 0) + c
            self._df = df
        return self._df


def compaction_plan(manifest: dict, max_segments: int, max_dead_fraction: float) -> list[str]:
    """The segments a merge should fold together (empty: none). A segment whose tombstoned share passes
    max_dead_fraction is rewritten; with more than max_segments segments, every segment but the largest (by live
    rows) is merged into one, so the cost of a merge follows the small segments, not the whole index."""
    segs = manifest.get("segments") or []
    live = {e["name"]: int(e["rows"]) - int(e.get("dead_rows", 0)) for e in segs}
    chosen = {e["name"] for e in segs if int(e["rows"]) and int(e.get("dead_rows", 0)) / int(e["rows"]) > max_dead_fraction}
    if len(segs) > max(1, max_segments):
        largest = max(segs, key=lambda e: (live[e["name"]], e["name"]))["name"]
        chosen |= {e["name"] for e in segs if e["name"] != largest}
    if len(chosen) == 1 and not any(int(e.get("dead_rows", 0)) for e in segs if e["name"] in chosen):
        return []
    return [e["name"] for e in segs if e["name"] in chosen]


class FaissStore:
    """The embedded backend (default): segments of FAISS vectors + BM25 postings + chunks, in immutable
    generations (rag.store.IndexStore)."""

    backend = "faiss"

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._segments: dict[str, Segment] = {}  # loaded segments (immutable), reused by the next generation

    @property
    def segments_dir(self) -> Path:
        return self.dir / "segments"

    def signature(self) -> tuple | None:
        """Changes whenever an ingest publishes (CURRENT is replaced, so its inode changes); None: no index."""
        try:
            st = os.stat(self.current_file)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def stats(self) -> dict:
        m = self.read_manifest() or {}
        name = self.current_name() or "-"
        dirs = [self.dir / name] + [self.segments_dir / e["name"] for e in m.get("segments") or []]
        disk = sum(f.stat().st_size for d in dirs if d.is_dir() for f in d.rglob("*") if f.is_file())
        segs = m.get("segments") or []
        return {"backend": "faiss", "generation": self.current_name(), "documents": len(m.get("documents") or {}),
                "chunks": int(m.get("chunk_count") or 0), "disk_bytes": disk, "faiss": m.get("faiss"), "segments": len(segs),
                "dead_rows": sum(int(e.get("dead_rows", 0)) for e in segs)}

    # ------------------------------------------------------------ reading
    @property
    def current_file(self) -> Path:
        return self.dir / "CURRENT"

    def current_name(self) -> str | None:
        try:
            data = json.loads(self.current_file.read_text(encoding="utf-8"))
            return str(data["generation"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise IndexError_(f"index at {self.dir} is damaged (CURRENT unreadable: {e}); run `rag ingest --rebuild`") from e

    def exists(self) -> bool:
        return self.current_name() is not None

    def read_manifest(self) -> dict | None:
        name = self.current_name()
        if name is None:
            return None
        try:
            return json.loads((self.dir / name / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexError_(f"index at {self.dir} is damaged ({e}); run `rag ingest --rebuild`") from e

    def read_docs(self) -> dict[str, DocMeta]:
        name = self.current_name()
        try:
            return {k: DocMeta(**v) for k, v in json.loads((self.dir / str(name) / "docs.json").read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, TypeError) as e:
            raise IndexError_(f"index at {self.dir} is damaged ({e}); run `rag ingest --rebuild`") from e

    def check_manifest(self, manifest: dict, expect_embedder: str | None = None) -> None:
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IncompatibleIndex(
                f"index at {self.dir} has format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}: run `rag ingest` "
                f"(it converts the index; the embedding cache keeps the vectors) or `rag ingest --rebuild`"
            )
        if expect_embedder and manifest.get("embedder") != expect_embedder:
            raise IncompatibleIndex(
                f"index at {self.dir} was built with embedder '{manifest.get('embedder')}', but '{expect_embedder}' is configured: "
                f"scores would be meaningless. Run `rag ingest --rebuild` (or configure the original embedder)."
            )

    def load(self, expect_embedder: str | None = None) -> Generation:
        name = self.current_name()
        if name is None:
            raise IndexError_(f"no index at {self.dir}: build one with `rag ingest data/replies` (or pass --index DIR)")
        gdir = self.dir / name
        try:
            manifest = json.loads((gdir / "manifest.json").read_text(encoding="utf-8"))
            self.check_manifest(manifest, expect_embedder)
            docs = {k: DocMeta(**v) for k, v in json.loads((gdir / "docs.json").read_text(encoding="utf-8")).items()}
            segments = []
            for e in manifest.get("segments") or []:
                seg = self._segments.get(e["name"])
                if seg is None:
                    seg = _load_segment(self.segments_dir / e["name"])
                segments.append(seg)
            gen = Generation(gdir, manifest, docs, segments)
        except IndexError_:
            raise
        except Exception as e:  # any damaged file: say so, never a traceback
            raise IndexError_(f"index at {self.dir} is damaged ({type(e).__name__}: {e}); run `rag ingest --rebuild`") from e
        if len(gen.chunks) != int(manifest.get("chunk_count", -1)) or set(docs) != set(manifest.get("documents") or {}):
            raise IndexError_(f"index at {self.dir} is inconsistent ({len(gen.chunks)} chunks, manifest {manifest.get('chunk_count')}); run `rag ingest --rebuild`")
        self._segments = {s.name: s for s in segments}  # only the current generation's stay loaded
        return gen

    # ------------------------------------------------------------ writing (the caller holds the ingest lock)
    def _next_number(self, prefix: str, where: Path) -> int:
        nums = [0]
        if where.is_dir():
            for p in where.iterdir():
                tail = p.name[len(prefix) :] if p.name.startswith(prefix) else ""
                if tail.isdigit():
                    nums.append(int(tail))
        return 1 + max(nums)

    def write_segment(self, chunks: list[Chunk], vectors: np.ndarray, token_lists: list[list[str]] | None = None, postings: Postings | None = None) -> dict:
        """Write one immutable segment (to a temporary directory, fsynced, then renamed). Returns its manifest entry."""
        tmp = self._build_segment(f"{self._next_number('seg-', self.segments_dir):06d}", chunks, vectors, token_lists, postings)
        return self._install_segment(tmp)

    def _build_segment(self, tag: str, chunks: list[Chunk], vectors: np.ndarray, token_lists: list[list[str]] | None = None,
                       postings: Postings | None = None) -> Path:
        """Write a segment's files into a temporary directory `.tmp-seg-<tag>-<pid>` (fsynced): the slow part
        (FAISS, HNSW from 10^5 rows), which needs no lock; `_install_segment` names and renames it."""
        import faiss

        self.segments_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".tmp-seg-{tag}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        n = len(chunks)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(n, dim)
        doc_rows: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            r = doc_rows.setdefault(c.doc_id, [i, i + 1])
            if r[1] != i and r[1] != i + 1:
                raise ValueError(f"the passages of document {c.doc_id} are not contiguous")
            r[1] = i + 1
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        _step("segment:chunks")
        _save_npy(tmp / "vectors.npy", vectors)
        _step("segment:vectors")
        findex = build_faiss(vectors)
        faiss.write_index(findex, str(tmp / "dense.faiss"))
        _fsync_file(tmp / "dense.faiss")
        _step("segment:faiss")
        post = postings if postings is not None else Postings.from_tokens(token_lists or [])
        _write_json(tmp / "bm25_terms.json", post.terms)
        _save_npy(tmp / "bm25_indptr.npy", post.indptr.astype(np.int64))
        _save_npy(tmp / "bm25_rows.npy", post.rows.astype(np.int32))
        _save_npy(tmp / "bm25_tf.npy", post.tf.astype(np.int32))
        _save_npy(tmp / "bm25_doclen.npy", post.doclen.astype(np.int32))
        _step("segment:bm25")
        _write_json(tmp / "segment.json", {"format_version": FORMAT_VERSION, "rows": n, "dim": dim, "faiss": type(findex).__name__,
                                           "docs": doc_rows, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
        _fsync_dir(tmp)
        _step("segment:written")
        return tmp

    def _install_segment(self, tmp: Path) -> dict:
        """Give a built segment the next free name (the caller holds the ingest lock) and rename it into place."""
        info = json.loads((tmp / "segment.json").read_text(encoding="utf-8"))
        name = f"seg-{self._next_number('seg-', self.segments_dir):06d}"
        os.rename(tmp, self.segments_dir / name)
        _fsync_dir(self.segments_dir)
        _step("segment:renamed")
        return {"name": name, "rows": int(info["rows"]), "dead_rows": 0, "dead_docs": [], "faiss": info["faiss"]}

    def _publish(self, manifest: dict, docs: dict[str, DocMeta]) -> str:
        """Write a generation (manifest + documents) and make it current: the one atomic step (os.replace)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        prev = self.current_name()
        name = f"gen-{self._next_number('gen-', self.dir):06d}"
        tmp = self.dir / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_json(tmp / "docs.json", {k: v.to_dict() for k, v in sorted(docs.items())})
        _step("generation:docs")
        _write_json(tmp / "manifest.json", manifest)
        _fsync_dir(tmp)
        _step("generation:written")
        os.rename(tmp, self.dir / name)
        _fsync_dir(self.dir)
        _step("generation:renamed")
        cur_tmp = self.dir / f".CURRENT.{os.getpid()}"
        _write_json(cur_tmp, {"generation": name})
        _step("current:written")
        os.replace(cur_tmp, self.current_file)
        _fsync_dir(self.dir)
        _step("current:replaced")
        self._cleanup(keep={name, prev})
        return name

    def _manifest(self, embedder_identity: str, dim: int, documents: dict, segments: list[dict], extra: dict | None) -> dict:
        kinds = sorted({e.get("faiss") or "" for e in segments} - {""})
        return {
            "format_version": FORMAT_VERSION,
            "embedder": embedder_identity,
            "dim": int(dim),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "chunk_count": sum(int(v["chunks"]) for v in documents.values()),
            "faiss": "+".join(kinds) if kinds else "IndexFlatIP",
            "documents": dict(sorted(documents.items())),
            "segments": segments,
            **(extra or {}),
        }

    def write_generation(
        self,
        embedder_identity: str,
        dim: int,
        docs: dict[str, DocMeta],
        chunks: list[Chunk],
        vectors: np.ndarray,
        token_lists: list[list[str]],
        extra: dict | None = None,
    ) -> str:
        """A from-scratch generation: all the passages in one new segment, no earlier segment kept. Returns its name."""
        order = sorted(range(len(chunks)), key=lambda i: chunks[i].doc_id)  # stable: each document's rows stay in order
        chunks = [chunks[i] for i in order]
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(order), dim)[order] if order else np.zeros((0, dim), np.float32)
        token_lists = [token_lists[i] for i in order]
        segments, documents = [], {}
        if chunks:
            entry = self.write_segment(chunks, vectors, token_lists)
            segments.append(entry)
        per_doc: dict[str, int] = {}
        for c in chunks:
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
        for k, v in docs.items():
            if per_doc.get(k):
                documents[k] = {"content_hash": v.content_hash, "path": v.path, "chunks": per_doc[k], "segment": segments[0]["name"]}
        docs = {k: v for k, v in docs.items() if k in documents}
        return self._publish(self._manifest(embedder_identity, dim, documents, segments, extra), docs)

    def apply(self, embedder_identity: str, dim: int, docs: dict[str, DocMeta], changes: list, deletes: list[str], extra: dict | None = None) -> dict:
        """Incremental: the changed documents (rag.store.DocChange) go into one new segment, their earlier rows and
        the deleted documents' rows get tombstones; `docs` is the metadata of every document of the new state.
        Returns {"generation", "segment", "tombstoned_rows"}."""
        m = self.read_manifest()
        if m is None:
            raise IndexError_(f"no index at {self.dir} to update")
        self.check_manifest(m, embedder_identity)
        documents = {k: dict(v) for k, v in (m.get("documents") or {}).items()}
        segments = [dict(e, dead_docs=list(e.get("dead_docs") or [])) for e in m.get("segments") or []]
        by_name = {e["name"]: e for e in segments}
        changes = [c for c in changes if c.chunks]
        tombstoned = 0
        for doc_id in sorted(set(deletes) | {c.meta.doc_id for c in changes}):
            old = documents.pop(doc_id, None)
            if old is not None:
                e = by_name[old["segment"]]
                e["dead_docs"] = sorted(set(e["dead_docs"]) | {doc_id})
                e["dead_rows"] = int(e.get("dead_rows", 0)) + int(old["chunks"])
                tombstoned += int(old["chunks"])
        seg_name = None
        if changes:
            changes = sorted(changes, key=lambda c: c.meta.doc_id)
            chunks = [ch for c in changes for ch in c.chunks]
            vectors = np.concatenate([np.asarray(c.vectors, dtype=np.float32).reshape(len(c.chunks), dim) for c in changes])
            tokens = [t for c in changes for t in c.tokens]
            entry = self.write_segment(chunks, vectors, tokens)
            segments.append(entry)
            seg_name = entry["name"]
            for c in changes:
                documents[c.meta.doc_id] = {"segment": seg_name, "chunks": len(c.chunks)}
        segments = [e for e in segments if int(e["rows"]) > int(e.get("dead_rows", 0))]  # nothing live: the segment goes
        for k, v in documents.items():
            meta = docs.get(k)
            if meta is None:
                raise IndexError_(f"document {k} has passages but no metadata")
            v.update(content_hash=meta.content_hash, path=meta.path)
        new_docs = {k: docs[k] for k in documents}
        name = self._publish(self._manifest(embedder_identity, dim, documents, segments, {**{k: v for k, v in m.items() if k == "parsing"}, **(extra or {})}), new_docs)
        return {"generation": name, "segment": seg_name, "tombstoned_rows": tombstoned}

    def compact(self, names: list[str] | None = None) -> dict | None:
        """Merge these segments (all when None) into one, without their tombstoned rows; None if there is nothing
        to do. Vectors and postings are copied (nothing is embedded or tokenised again); the result searches
        exactly as before. The caller holds the ingest lock. Returns {"generation", "segment", "merged", "dropped_rows"}."""
        work = self.prepare_merge(names)
        return self.finish_merge(work) if work is not None else None

    def prepare_merge(self, names: list[str] | None = None) -> "MergeWork | None":
        """The slow half of a merge, which needs no lock: read the current generation (its segments are immutable)
        and build the merged segment in a temporary directory. `finish_merge` publishes it under the lock."""
        gen = self.load()
        m = gen.manifest
        entries = m.get("segments") or []
        chosen = [e["name"] for e in entries if names is None or e["name"] in names]
        dead = sum(int(e.get("dead_rows", 0)) for e in entries if e["name"] in chosen)
        if len(chosen) < 2 and not dead:
            return None
        idx = {s.name: i for i, s in enumerate(gen.segments)}
        moved = {d: int(v["chunks"]) for d, v in sorted(m["documents"].items()) if v["segment"] in chosen}
        tmp = None
        if moved:
            rows = np.concatenate([np.arange(*gen._ranges[d], dtype=np.int64) for d in moved])  # row order = document order
            chunks = [gen.chunks[r] for r in rows]
            vectors = gen.vectors_of(rows)
            # postings: every chosen segment's, its rows renumbered in the new order, tombstoned rows left out
            terms = sorted(set().union(*(gen.segments[idx[s]].postings.terms for s in chosen)))
            tid = {t: i for i, t in enumerate(terms)}
            new_row_of = np.full(len(gen.chunks), -1, dtype=np.int64)
            new_row_of[rows] = np.arange(len(rows))
            t_parts, r_parts, c_parts = [], [], []
            doclen = np.zeros(len(rows), dtype=np.int32)
            for s in chosen:
                i = idx[s]
                p = gen.segments[i].postings
                glob = gen._glob[i]
                new_local = np.where(glob >= 0, new_row_of[np.maximum(glob, 0)], -1)
                ok = new_local >= 0
                doclen[new_local[ok]] = p.doclen[ok]
                term_of = np.repeat(np.array([tid[t] for t in p.terms], dtype=np.int64), np.diff(p.indptr))
                nr = new_local[p.rows]
                keep = nr >= 0
                t_parts.append(term_of[keep])
                r_parts.append(nr[keep])
                c_parts.append(p.tf[keep].astype(np.int64))
            post = Postings._from_triples(terms, np.concatenate(t_parts), np.concatenate(r_parts), np.concatenate(c_parts), doclen, len(rows))
            tmp = self._build_segment("merge", chunks, vectors, postings=post)
        return MergeWork(chosen=chosen, moved=moved, dropped_rows=dead, tmp=tmp)

    def finish_merge(self, work: "MergeWork") -> dict | None:
        """Publish a prepared merge against the generation that is current now (the caller holds the ingest lock).
        What ingests did since the merge was prepared is kept: a moved document that was replaced or removed since
        (or merged elsewhere by another merge) is tombstoned in the merged segment. When none of its documents is
        still where the merge took it from, the merge is stale: nothing is published (None) and its segment goes."""
        m = self.read_manifest()
        if m is None:
            work.discard()
            return None
        documents = {k: dict(v) for k, v in m["documents"].items()}
        current = m.get("segments") or []
        still = [d for d in work.moved if d in documents and documents[d]["segment"] in work.chosen]
        gone = [e for e in current if e["name"] in work.chosen]
        if not still and not any(int(e.get("dead_rows", 0)) for e in gone):
            work.discard()
            return None
        segments = [dict(e) for e in current if e["name"] not in work.chosen]
        seg_name = None
        if work.tmp is not None and still:
            entry = self._install_segment(work.tmp)
            seg_name = entry["name"]
            for d, n in work.moved.items():
                if d in still:
                    documents[d]["segment"] = seg_name
                else:  # replaced, removed or merged elsewhere while the merge was built
                    entry["dead_docs"] = sorted(set(entry["dead_docs"]) | {d})
                    entry["dead_rows"] += n
            segments.append(entry)
        else:
            work.discard()
        extra = {k: v for k, v in m.items() if k == "parsing"}
        name = self._publish(self._manifest(m["embedder"], m["dim"], documents, segments, extra), self.read_docs())
        return {"generation": name, "segment": seg_name, "merged": [e["name"] for e in gone], "dropped_rows": work.dropped_rows}

    def _cleanup(self, keep: set[str | None]) -> None:
        """Remove old generations (the previous one stays for readers still loading it), the segments no kept
        generation names, and temporary files of writers that died."""
        for p in self.dir.iterdir():
            if p.name.startswith("gen-") and p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith((".tmp-gen-", ".tmp-seg-")):
                pid = p.name.rsplit("-", 1)[-1]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".CURRENT."):
                pid = p.name.rsplit(".", 1)[-1]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    p.unlink(missing_ok=True)
        if not self.segments_dir.is_dir():
            return
        used: set[str] = set()
        for g in keep:
            if not g:
                continue
            try:
                mm = json.loads((self.dir / g / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return  # cannot tell which segments are used: remove none
            used |= {e["name"] for e in mm.get("segments") or []}
        for p in self.segments_dir.iterdir():
            if p.name.startswith("seg-") and p.name not in used:
                shutil.rmtree(p, ignore_errors=True)


@dataclass
class MergeWork:
    """A merge built by FaissStore.prepare_merge, waiting for finish_merge."""

    chosen: list[str]  # the segments it replaces
    moved: dict[str, int]  # the live documents of those segments then, with their passages
    dropped_rows: int  # tombstoned rows left out
    tmp: Path | None  # the built segment (None: no live row, the segments just go)

    def discard(self) -> None:
        """Remove the built segment (a merge that is not published)."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


IndexStore = FaissStore  # the name every caller used before there were two backends


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
