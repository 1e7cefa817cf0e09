"""Stage 4b: the persisted index: chunk store, FAISS vectors, BM25, manifest.

Layout of an index directory:

    CURRENT                 -> {"generation": "gen-000007"}  (replaced atomically)
    gen-000007/manifest.json   format version, embedder identity and dimension, documents, counts
    gen-000007/docs.json       DocMeta per document
    gen-000007/chunks.jsonl    one Chunk per line, in vector order
    gen-000007/vectors.npy     float32 passage vectors (allow_pickle=False)
    gen-000007/dense.faiss     FAISS inner-product index over the normalised vectors
    gen-000007/bm25/           bm25s arrays + vocab (JSON / .npy, no pickle)
    cache/embeddings-*.sqlite  vectors by content hash, per embedder
    .ingest.lock               held by the one ingest allowed at a time
    feedback.jsonl             thumbs up/down from the chat

A new generation is written in full to a temporary directory, fsynced, renamed, and only then is
CURRENT swapped: a crash at any point leaves the previous generation complete and current.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .types import Chunk, DocMeta

FORMAT_VERSION = 1
# Below this many vectors exact search is fast enough: one query costs ~0.07 ms per 1,000 vectors on a quiet
# 2-core machine (7 ms at 10^5, 72 ms at 10^6), 2-3x that on a busy one, while HNSW (M=32, efSearch=256)
# stays ~1 ms but costs ~0.3 s per 1,000 vectors to rebuild at every ingest (31 s at 10^5, 7 min at 10^6).
# Figures: benchmarks/scale.py, README "Scaling".
HNSW_THRESHOLD = 100_000
# recall@10 against exact search at 10^6 chunks: 0.94 with efSearch 128, 0.99 with 256 (~1 ms a query)
HNSW_EF_SEARCH = 256


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


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


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
    import bm25s

    bm = bm25s.BM25(k1=1.2, b=0.75)
    # an empty token list would make bm25s drop the document: keep alignment with a placeholder
    bm.index([t or ["\u2205"] for t in token_lists], show_progress=False)
    return bm


@dataclass
class Generation:
    """One loaded, immutable state of the index."""

    path: Path
    manifest: dict
    docs: dict[str, DocMeta]
    chunks: list[Chunk]
    vectors: np.ndarray
    faiss_index: object
    bm25: object
    _by_doc: dict[str, list[int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    backend = "faiss"

    def rows_of(self, doc_id: str) -> list[int]:
        if not self._by_doc:
            for i, c in enumerate(self.chunks):
                self._by_doc.setdefault(c.doc_id, []).append(i)
        return self._by_doc.get(doc_id, [])

    # ------------------------------------------------------------ the reader's side of rag.store.Snapshot
    def filter_rows(self, cities: list[str] | None = None, years: list[str] | None = None, doc_ids: list[str] | None = None) -> np.ndarray:
        """Row ids of the passages whose document passes every filter given (city, year, document id)."""
        ok_docs = {
            d
            for d, m in self.docs.items()
            if (not cities or m.city in cities) and (not years or (m.year and m.year in years)) and (not doc_ids or d in doc_ids)
        }
        rows = [i for d in ok_docs for i in self.rows_of(d)]
        return np.array(sorted(rows), dtype=np.int64)

    def search_dense(self, qvec: np.ndarray, allowed: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        import faiss

        if allowed is not None and len(allowed) == 0:
            return []
        n = min(n, self.faiss_index.ntotal if allowed is None else len(allowed))
        if n <= 0:
            return []
        if allowed is not None:
            if len(allowed) <= 4096:  # small subset: exact scores straight from the vectors
                # elementwise, not `@`: a BLAS call leaves OpenBLAS threads spinning, which slows the next
                # query embedding 2-10x on a 2-core machine (benchmarks/scale.py, 5*10^4 chunks)
                sims = (self.vectors[allowed] * qvec).sum(axis=1)
                top = np.argsort(-sims)[:n]
                return [(int(allowed[i]), float(sims[i])) for i in top]
        # one query gains nothing from OpenMP threads, and on a busy machine their barrier makes a flat search
        # 4x slower (79 vs 18 ms at 10^5, benchmarks/scale.py); the setting is per thread, restored after
        prev_threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            if allowed is not None:
                bits = np.zeros(self.faiss_index.ntotal, dtype=bool)
                bits[allowed] = True
                bitmap = np.packbits(bits, bitorder="little")  # O(1) membership, 20x cheaper to build than a batch
                params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bitmap)))
                index = self.faiss_index
                if getattr(index, "storage", None) is not None:
                    # HNSW: graph search under a selective filter misses neighbours (recall@10 0.85 with 4% of the
                    # rows allowed, benchmarks/scale.py); its flat storage scanned with the filter is exact and fast
                    index = faiss.downcast_index(index.storage)
                D, I = index.search(qvec.reshape(1, -1), n, params=params)
            else:
                D, I = self.faiss_index.search(qvec.reshape(1, -1), n)
        finally:
            faiss.omp_set_num_threads(prev_threads)
        return [(int(i), float(d)) for i, d in zip(I[0], D[0]) if i >= 0]

    def search_lexical(self, tokens: list[str], allowed: np.ndarray | None, n: int) -> list[tuple[int, float]]:
        if self.bm25 is None or not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        if allowed is not None:
            mask = np.full(scores.shape, -1.0, dtype=np.float32)
            mask[allowed] = scores[allowed]
            scores = mask
        n = min(n, len(scores))
        if n <= 0:
            return []
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def document_frequencies(self) -> dict[str, int]:
        """Passages per BM25 term (bm25s keeps one posting list per term: its length is the term's df)."""
        vocab = getattr(self.bm25, "vocab_dict", None) or {}
        df: dict[str, int] = {}
        if vocab and self.bm25 is not None:
            counts = np.diff(np.asarray(self.bm25.scores["indptr"]))
            for tok, tid in vocab.items():
                if tid < len(counts):
                    df[tok] = int(counts[tid])
        return df


class FaissStore:
    """The embedded backend (default): FAISS + bm25s + chunk store in immutable generations (rag.store.IndexStore)."""

    backend = "faiss"

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def signature(self) -> tuple | None:
        """Changes whenever an ingest publishes (CURRENT is replaced, so its inode changes); None: no index."""
        try:
            st = os.stat(self.current_file)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def stats(self) -> dict:
        m = self.read_manifest() or {}
        gdir = self.dir / (self.current_name() or "-")
        disk = sum(f.stat().st_size for f in gdir.rglob("*") if f.is_file()) if gdir.is_dir() else 0
        return {"backend": "faiss", "generation": self.current_name(), "documents": len(m.get("documents") or {}),
                "chunks": int(m.get("chunk_count") or 0), "disk_bytes": disk, "faiss": m.get("faiss")}

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

    def load(self, expect_embedder: str | None = None) -> Generation:
        import bm25s
        import faiss

        name = self.current_name()
        if name is None:
            raise IndexError_(f"no index at {self.dir}: build one with `rag ingest data/replies` (or pass --index DIR)")
        gdir = self.dir / name
        try:
            manifest = json.loads((gdir / "manifest.json").read_text(encoding="utf-8"))
            if manifest.get("format_version") != FORMAT_VERSION:
                raise IncompatibleIndex(
                    f"index at {self.dir} has format {manifest.get('format_version')}, this version reads {FORMAT_VERSION}: run `rag ingest --rebuild`"
                )
            if expect_embedder and manifest.get("embedder") != expect_embedder:
                raise IncompatibleIndex(
                    f"index at {self.dir} was built with embedder '{manifest.get('embedder')}', but '{expect_embedder}' is configured: "
                    f"scores would be meaningless. Run `rag ingest --rebuild` (or configure the original embedder)."
                )
            docs = {k: DocMeta(**v) for k, v in json.loads((gdir / "docs.json").read_text(encoding="utf-8")).items()}
            with open(gdir / "chunks.jsonl", encoding="utf-8") as fh:
                chunks = [Chunk.from_dict(json.loads(line)) for line in fh if line.strip()]
            # memory-mapped: FAISS holds its own copy for search; these rows are read only for small filtered
            # searches and by ingest, so they need not occupy RAM (1.5 GB at 10^6 chunks, benchmarks/scale.py)
            vectors = np.load(gdir / "vectors.npy", allow_pickle=False, mmap_mode="r")
            findex = faiss.read_index(str(gdir / "dense.faiss"))
            if hasattr(findex, "hnsw"):  # indexes built with a smaller efSearch get today's
                findex.hnsw.efSearch = max(findex.hnsw.efSearch, HNSW_EF_SEARCH)
            bm = bm25s.BM25.load(str(gdir / "bm25"), allow_pickle=False) if chunks else None
        except IndexError_:
            raise
        except Exception as e:  # any damaged file: say so, never a traceback
            raise IndexError_(f"index at {self.dir} is damaged ({type(e).__name__}: {e}); run `rag ingest --rebuild`") from e
        if len(chunks) != vectors.shape[0] or findex.ntotal != len(chunks):
            raise IndexError_(f"index at {self.dir} is inconsistent ({len(chunks)} chunks, {vectors.shape[0]} vectors); run `rag ingest --rebuild`")
        return Generation(gdir, manifest, docs, chunks, vectors, findex, bm)

    # ------------------------------------------------------------ writing
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
        """Write a complete new generation and make it current. Returns its name."""
        self.dir.mkdir(parents=True, exist_ok=True)
        prev = self.current_name()
        n = 1 + max([int(p.name.split("-")[1]) for p in self.dir.glob("gen-[0-9]*") if p.name.split("-")[1].isdigit()] or [0])
        name = f"gen-{n:06d}"
        tmp = self.dir / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(chunks), dim)
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.to_dict(), ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        _write_json(tmp / "docs.json", {k: v.to_dict() for k, v in sorted(docs.items())})
        with open(tmp / "vectors.npy", "wb") as fh:
            np.save(fh, vectors, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        import faiss

        findex = build_faiss(vectors)
        faiss.write_index(findex, str(tmp / "dense.faiss"))
        if chunks:
            bm = build_bm25(token_lists)
            bm.save(str(tmp / "bm25"), show_progress=False)
        else:
            (tmp / "bm25").mkdir()
        for f in (tmp / "bm25").iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        per_doc: dict[str, int] = {}
        for c in chunks:
            per_doc[c.doc_id] = per_doc.get(c.doc_id, 0) + 1
        manifest = {
            "format_version": FORMAT_VERSION,
            "embedder": embedder_identity,
            "dim": dim,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "chunk_count": len(chunks),
            "faiss": type(findex).__name__,
            "documents": {
                k: {"content_hash": v.content_hash, "path": v.path, "chunks": per_doc.get(k, 0)} for k, v in sorted(docs.items())
            },
            **(extra or {}),
        }
        _write_json(tmp / "manifest.json", manifest)
        _fsync_dir(tmp)
        os.rename(tmp, self.dir / name)
        _fsync_dir(self.dir)
        cur_tmp = self.dir / f".CURRENT.{os.getpid()}"
        _write_json(cur_tmp, {"generation": name})
        os.replace(cur_tmp, self.current_file)
        _fsync_dir(self.dir)
        self._cleanup(keep={name, prev})
        return name

    def _cleanup(self, keep: set[str | None]) -> None:
        """Remove old generations (the previous one stays for readers still loading it) and stale temp dirs."""
        for p in self.dir.iterdir():
            if p.name.startswith("gen-") and p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".tmp-gen-"):
                pid = p.name.rsplit("-", 1)[-1]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(".CURRENT."):
                pid = p.name.rsplit(".", 1)[-1]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    p.unlink(missing_ok=True)


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
