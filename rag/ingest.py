"""Ingest: files -> RawFile -> Document -> Chunks -> vectors -> a new index generation.

Incremental: a file whose bytes did not change is skipped; a changed file replaces its chunks; a document
removed with `remove` (or whose file disappeared from a directory being re-ingested) leaves every index.
Only one ingest runs per index (a lock file); failures of single files never touch the existing index.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from .chunker import chunk_document
from .config import Settings
from .embedder import EmbeddingCache, embed_with_cache, make_embedder
from .index import FORMAT_VERSION, IncompatibleIndex, IndexStore, compaction_plan
from .loader import LoadError, discover, read_file
from .parser import parse
from .textproc import tokenize
from .types import Chunk, DocMeta


class IngestError(RuntimeError):
    pass


class IndexLocked(IngestError):
    pass


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    chunks_total: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    generation: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    # faiss: what the ingest wrote
    segment: str = ""  # the new segment (only the added and changed documents' passages)
    chunks_written: int = 0  # passages written into it
    tombstoned: int = 0  # passages of replaced or removed documents marked deleted
    merged: list[str] = field(default_factory=list)  # segments folded together by a merge
    merged_into: str = ""
    merge_dropped_rows: int = 0  # tombstoned passages the merge left out
    merge_pending: list[str] = field(default_factory=list)  # segments a merge should fold ([index] merge = "background")
    merge_pid: int = 0  # the background `rag compact --segments …` started for them
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks_total": self.chunks_total,
            "chunks_embedded": self.chunks_embedded,
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
            "segment": self.segment,
            "chunks_written": self.chunks_written,
            "tombstoned": self.tombstoned,
            "merged": self.merged,
            "merged_into": self.merged_into,
            "merge_dropped_rows": self.merge_dropped_rows,
            "merge_pending": self.merge_pending,
            "merge_pid": self.merge_pid,
            "notes": self.notes,
        }


class Progress:
    """Callbacks the CLI/app implement to show progress (all optional)."""

    def files(self, total: int) -> None: ...
    def file_done(self, path: str, status: str) -> None: ...
    def embed_total(self, total: int) -> None: ...
    def embed_advance(self, n: int) -> None: ...
    def stage(self, name: str) -> None: ...


def lock_for(index_dir: Path) -> FileLock:
    index_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(index_dir / ".ingest.lock"))


def _under(path: str, roots: list[Path]) -> bool:
    try:
        rp = Path(path).resolve()
    except OSError:
        return False
    return any(rp == r or r in rp.parents for r in roots)


def ingest(
    paths: list[str | Path],
    settings: Settings,
    rebuild: bool = False,
    progress: Progress | None = None,
    lock_timeout: float = 0,
    remove_ids: list[str] | None = None,
    ray: str | None = None,
    ray_workers: int = 0,
    compact: bool = False,
) -> IngestReport:
    """Add/update the files under `paths` (and remove `remove_ids`) in the index at settings.index_dir
    (or the Milvus collection of [index]). `ray`: embed in Ray ("" = a local Ray, else a cluster address).
    `compact`: (faiss) merge every segment into one afterwards."""
    t0 = time.perf_counter()
    progress = progress or Progress()
    backend = (settings.index.backend or "faiss").lower()
    if backend not in ("faiss", "milvus"):
        raise IngestError(f"unknown index backend '{settings.index.backend}' (choose faiss or milvus)")
    store = IndexStore(settings.index_dir)
    lock = lock_for(store.dir)
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout as e:
        raise IndexLocked(f"another `rag ingest` is writing the index at {store.dir} (lock {lock.lock_file}); wait for it to finish and try again") from e
    embed = _Embed(settings, store.dir, ray, ray_workers)
    try:
        if backend == "milvus":
            return _ingest_milvus_locked(paths, settings, rebuild, progress, remove_ids or [], t0, embed)
        rep = _ingest_locked(paths, settings, store, rebuild, progress, remove_ids or [], t0, embed, compact=compact)
    finally:
        lock.release()
    if rep.merge_pending:
        rep.merge_pid = start_background_merge(settings, rep.merge_pending)
        rep.notes.append(f"merging {len(rep.merge_pending)} segment(s) in the background (pid {rep.merge_pid}, log {store.dir / MERGE_LOG}); "
                         "searches use the current generation meanwhile")
    return rep


# Bump when the parser or the chunker changes what they make of the same file: an index built by another
# version re-parses every file on the next ingest (the embedding cache keeps unchanged passages free).
PARSING_VERSION = 3


def parsing_identity(settings: Settings) -> str:
    return f"parser-v{PARSING_VERSION}/chunks-{settings.chunker.max_chars}-{settings.chunker.min_chars}"


class _Embed:
    """Passage vectors through the embedding cache: embedded here, or in Ray (rag.distributed) with --ray."""

    def __init__(self, settings: Settings, index_dir: Path, ray: str | None, workers: int):
        self.settings, self.index_dir, self.ray, self.workers = settings, index_dir, ray, workers

    def __call__(self, embedder, identity: str, texts: list[str], progress: Progress) -> tuple[np.ndarray, int]:
        s = self.settings
        cache = EmbeddingCache(Path(s.embedder.cache_dir) if s.embedder.cache_dir else self.index_dir / "cache", identity)
        try:
            progress.embed_total(len(texts))
            progress.stage("embedding")
            if self.ray is not None:
                from .distributed import embed_with_ray

                return embed_with_ray(s, cache, texts, address=self.ray, workers=self.workers, progress=progress.embed_advance)
            return embed_with_cache(embedder, cache, texts, batch_size=s.embedder.batch_size, progress=progress.embed_advance)
        finally:
            cache.close()


def _drop_and_discover(docs: dict[str, DocMeta], paths, remove_ids: list[str], rep: IngestReport, progress: Progress, where) -> tuple:
    """Drop the documents asked to be removed and those whose file disappeared from a directory being
    re-ingested, then discover the files to read. Returns (the discovery, the dropped document ids)."""
    dropped: list[str] = []
    for doc_id in remove_ids:
        if doc_id not in docs:
            raise IngestError(f"no document '{doc_id}' in the index at {where} (see `rag docs`)")
        docs.pop(doc_id)
        dropped.append(doc_id)
        rep.removed.append(doc_id)
    found = discover(list(paths))
    for err in found.problems:
        rep.skipped.append((err.path, err.reason))
    progress.files(len(found.files))
    dir_roots = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    if dir_roots:  # files that disappeared from a directory being re-ingested
        for doc_id, meta in list(docs.items()):
            if meta.path and _under(meta.path, dir_roots) and not Path(meta.path).exists():
                docs.pop(doc_id)
                dropped.append(doc_id)
                rep.removed.append(doc_id)
    return found, dropped


def _ingest_locked(paths, settings: Settings, store: IndexStore, rebuild: bool, progress: Progress, remove_ids: list[str], t0: float, embed: _Embed,
                   compact: bool = False) -> IngestReport:
    """The faiss backend: the added and changed documents go into one new segment, replaced and removed ones get
    tombstones (rag.index); the existing segments are neither read nor rewritten. A from-scratch generation only
    with --rebuild (or for an index of the older one-piece format); merges by [index] max_segments / max_dead_fraction."""
    rep = IngestReport()
    embedder = make_embedder(settings.embedder)
    identity = embedder.identity
    parsing = parsing_identity(settings)
    reparse = False  # the index was made by another parser/chunker version: the files given are parsed again

    # the current state: the documents' metadata and which have passages (the manifest; no segment is loaded)
    docs: dict[str, DocMeta] = {}
    indexed: set[str] = set()
    manifest = store.read_manifest() if store.exists() else None
    if manifest is not None and not rebuild and manifest.get("format_version") != FORMAT_VERSION:
        rebuild = True  # an index of the older format is converted: written again from its files (the cache has the vectors)
        rep.notes.append(f"index format {manifest.get('format_version')} converted to {FORMAT_VERSION}")
    if manifest is not None and not rebuild:
        try:
            store.check_manifest(manifest, expect_embedder=identity)
        except IncompatibleIndex as e:
            raise IngestError(str(e)) from e
        docs = store.read_docs()
        indexed = set(manifest.get("documents") or {})
        reparse = manifest.get("parsing") != parsing
    elif manifest is not None and rebuild:
        # rebuild re-reads the files the index knows about, plus the given paths
        known = [v.get("path") for v in (manifest.get("documents") or {}).values() if v.get("path")]
        paths = list(paths) + [p for p in known if Path(p).exists() and p not in paths]

    found, dropped = _drop_and_discover(docs, paths, remove_ids, rep, progress, store.dir)
    indexed -= set(dropped)

    t_parse = time.perf_counter()
    new_chunks = _read_and_parse(found.files, settings, docs, lambda d: d in indexed, reparse, rep, progress)
    rep.timings["parse"] = time.perf_counter() - t_parse

    if not rep.changed and not rebuild and not reparse:
        if compact and manifest is not None:
            _compact(store, None, rep)
        rep.chunks_total = int((store.read_manifest() or {}).get("chunk_count") or 0)
        rep.generation = store.current_name() or ""
        rep.seconds = time.perf_counter() - t0
        return rep

    todo: list[Chunk] = [c for doc_id in sorted(new_chunks) for c in new_chunks[doc_id]]
    # BM25 tokens (jieba, pure Python) are computed in a thread while the C embedder runs (it releases the GIL)
    tokens: list[list[str]] = []
    tok_thread = threading.Thread(target=lambda: tokens.extend(tokenize(c.context_text()) for c in todo), daemon=True)
    tok_thread.start()
    # embed only what is new or changed (the cache makes a rebuild of unchanged text free)
    t_emb = time.perf_counter()
    vecs, n_embedded = embed(embedder, identity, [c.context_text() for c in todo], progress)
    rep.chunks_embedded = n_embedded
    rep.timings["embed"] = time.perf_counter() - t_emb

    t_idx = time.perf_counter()
    progress.stage("indexing")
    dim = int(vecs.shape[1]) if len(todo) else int((manifest or {}).get("dim") or embedder.dim)
    vecs = np.asarray(vecs, dtype=np.float32).reshape(len(todo), dim)
    tok_thread.join()
    if len(tokens) != len(todo):  # the thread failed: do it here, where an error is reported
        tokens = [tokenize(c.context_text()) for c in todo]
    if rebuild or manifest is None:
        rep.generation = store.write_generation(identity, dim, docs, todo, vecs, tokens, extra={"parsing": parsing})
        rep.segment = (store.read_manifest() or {}).get("segments", [{}])[-1].get("name", "") if todo else ""
    else:
        from .store import DocChange

        changes, pos = [], 0
        for d in sorted(new_chunks):
            cs = new_chunks[d]
            changes.append(DocChange(meta=docs[d], chunks=cs, vectors=vecs[pos : pos + len(cs)], tokens=tokens[pos : pos + len(cs)]))
            pos += len(cs)
        done = store.apply(identity, dim, docs, changes, dropped, extra={"parsing": parsing})
        rep.generation, rep.segment, rep.tombstoned = done["generation"], done["segment"] or "", done["tombstoned_rows"]
    rep.chunks_written = len(todo)
    rep.timings["index"] = time.perf_counter() - t_idx
    if compact:
        _compact(store, None, rep)
    else:
        plan = compaction_plan(store.read_manifest() or {}, settings.index.max_segments, settings.index.max_dead_fraction)
        mode = (settings.index.merge or "background").lower()
        if plan and mode == "inline":
            _compact(store, plan, rep)
        elif plan and mode == "background":
            rep.merge_pending = plan  # started by ingest() once the lock is released
    rep.chunks_total = int((store.read_manifest() or {}).get("chunk_count") or 0)
    rep.seconds = time.perf_counter() - t0
    return rep


def _compact(store: IndexStore, names: list[str] | None, rep: IngestReport) -> None:
    t = time.perf_counter()
    done = store.compact(names)
    if done:
        _merge_report(rep, done, time.perf_counter() - t)


def _merge_report(rep: IngestReport, done: dict, seconds: float) -> None:
    rep.generation = done["generation"]
    rep.merged = done["merged"]
    rep.merged_into = done["segment"] or ""
    rep.merge_dropped_rows = done["dropped_rows"]
    rep.timings["merge"] = seconds


MERGE_LOG = "merge.log"


def start_background_merge(settings: Settings, segments: list[str]) -> int:
    """Start `rag compact --segments …` for the index as a detached process (it outlives the ingest); returns its
    pid. Its output is appended to <index>/merge.log."""
    import subprocess
    import sys

    d = Path(settings.index_dir)
    log = open(d / MERGE_LOG, "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "compact", "--segments", ",".join(segments), "--index", str(d), "--wait", "600", "--json"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    return proc.pid


def compact_index(settings: Settings, lock_timeout: float = 0, auto: bool = False, segments: list[str] | None = None) -> IngestReport:
    """`rag compact`: merge every segment of the faiss index into one, without tombstoned rows, holding the ingest
    lock throughout. `auto` (`rag compact --auto`): merge only what [index] max_segments / max_dead_fraction call
    for; `segments` (`--segments`, what a background merge runs): these. Both build the merged segment without the
    lock (ingests go on) and take it only to publish; one such merge runs at a time (<index>/.merge.lock)."""
    t0 = time.perf_counter()
    store = IndexStore(settings.index_dir)
    if not store.exists():
        raise IngestError(f"no index at {store.dir}: build one with `rag ingest data/replies`")
    try:
        store.check_manifest(store.read_manifest() or {})
    except IncompatibleIndex as e:
        raise IngestError(str(e)) from e
    rep = IngestReport()
    lock = lock_for(store.dir)
    if auto or segments:
        merging = FileLock(str(store.dir / ".merge.lock"))
        try:
            merging.acquire(timeout=0)
        except Timeout:
            rep.notes.append("another merge is running")
            return _finish_report(store, rep, t0)
        try:
            plan = list(segments or []) or compaction_plan(store.read_manifest() or {}, settings.index.max_segments, settings.index.max_dead_fraction)
            t = time.perf_counter()
            work = store.prepare_merge(plan) if plan else None
            rep.timings["merge_build"] = time.perf_counter() - t
            if work is not None:
                try:
                    lock.acquire(timeout=lock_timeout)
                except Timeout as e:
                    work.discard()
                    raise IndexLocked(f"an ingest held the index at {store.dir} for {lock_timeout:.0f} s; the merge was not published") from e
                try:
                    t = time.perf_counter()
                    done = store.finish_merge(work)
                finally:
                    lock.release()
                if done is None:
                    rep.notes.append("the segments changed while the merge was built (merged by another writer): nothing published")
                else:
                    _merge_report(rep, done, time.perf_counter() - t)
        finally:
            merging.release()
        return _finish_report(store, rep, t0)
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout as e:
        raise IndexLocked(f"another `rag ingest` is writing the index at {store.dir} (lock {lock.lock_file}); wait for it to finish and try again") from e
    try:
        _compact(store, None, rep)
    finally:
        lock.release()
    return _finish_report(store, rep, t0)


def _finish_report(store: IndexStore, rep: IngestReport, t0: float) -> IngestReport:
    rep.generation = store.current_name() or ""
    rep.chunks_total = int((store.read_manifest() or {}).get("chunk_count") or 0)
    rep.seconds = time.perf_counter() - t0
    return rep


def _read_and_parse(files, settings: Settings, docs: dict[str, DocMeta], has_chunks, reparse: bool, rep: IngestReport, progress: Progress) -> dict[str, list[Chunk]]:
    """Read and parse the files whose bytes changed (or all, when reparse): the new chunks by document id.
    `docs` (the indexed documents' metadata) is updated in place; unchanged/skipped files go into rep."""
    new_chunks: dict[str, list[Chunk]] = {}
    seen_ids: dict[str, str] = {}
    for f in files:
        doc_id = f.stem
        if doc_id in seen_ids:
            rep.skipped.append((str(f), f"duplicate document id '{doc_id}' (also {seen_ids[doc_id]}); rename one of the files"))
            progress.file_done(str(f), "skipped")
            continue
        try:
            raw = read_file(f, doc_id=doc_id)
        except LoadError as e:
            rep.skipped.append((e.path, e.reason))
            progress.file_done(str(f), "skipped")
            continue
        seen_ids[doc_id] = str(f)
        old = docs.get(doc_id)
        if old is not None and old.content_hash == raw.content_hash and has_chunks(doc_id) and not reparse:
            rep.unchanged.append(doc_id)
            if old.path != raw.path:
                docs[doc_id] = DocMeta(**{**old.to_dict(), "path": raw.path})
            progress.file_done(str(f), "unchanged")
            continue
        try:
            doc = parse(raw)
            chunks = chunk_document(doc, settings.chunker)
        except RecursionError:
            rep.skipped.append((str(f), "outline too deeply nested to parse"))
            progress.file_done(str(f), "skipped")
            continue
        if not chunks:
            rep.skipped.append((str(f), "no indexable text after removing page boilerplate"))
            progress.file_done(str(f), "skipped")
            continue
        (rep.updated if old is not None else rep.added).append(doc_id)
        docs[doc_id] = doc.meta
        new_chunks[doc_id] = chunks
        progress.file_done(str(f), "updated" if old is not None else "added")
    return new_chunks


def _ingest_milvus_locked(paths, settings: Settings, rebuild: bool, progress: Progress, remove_ids: list[str], t0: float, embed: _Embed) -> IngestReport:
    """The Milvus backend: only what changed is written (upsert and delete by document content hash), in
    batches that each commit by document (rag.milvus_store); the collection is never rebuilt."""
    from .milvus_store import MilvusStore
    from .store import DocChange

    rep = IngestReport()
    embedder = make_embedder(settings.embedder)
    identity = embedder.identity
    parsing = parsing_identity(settings)
    store = MilvusStore(settings)
    manifest = store.read_manifest()
    if manifest and manifest.get("embedder") != identity:
        raise IngestError(
            f"the Milvus index at {store.uri} was built with embedder '{manifest.get('embedder')}', but '{identity}' is configured: "
            f"use another [index] collection for the new embedder (or configure the original one)"
        )
    docs: dict[str, DocMeta] = store.doc_states() if manifest else {}
    indexed = set(docs)
    reparse = bool(manifest) and (rebuild or manifest.get("parsing") != parsing)
    if rebuild and manifest:  # re-read every file the index knows about (new rows are written before old ones go)
        paths = list(paths) + [m.path for m in docs.values() if m.path and Path(m.path).exists() and m.path not in paths]
    found, deletes = _drop_and_discover(docs, paths, remove_ids, rep, progress, store.uri)
    t_parse = time.perf_counter()
    new_chunks = _read_and_parse(found.files, settings, docs, lambda d: d in indexed, reparse, rep, progress)
    rep.timings["parse"] = time.perf_counter() - t_parse
    if not new_chunks and not deletes:
        if manifest:
            store.recover()  # a batch that died after its commit: its clean-up
        rep.generation = store.current_name() or ""
        rep.seconds = time.perf_counter() - t0
        rep.chunks_total = _milvus_chunk_total(store) if manifest else 0
        return rep
    order = sorted(new_chunks)
    todo = [c for d in order for c in new_chunks[d]]
    tokens_of: dict[str, list[str]] = {}
    tok_thread = threading.Thread(target=lambda: tokens_of.update((c.chunk_id, tokenize(c.context_text())) for c in todo), daemon=True)
    tok_thread.start()
    t_emb = time.perf_counter()
    vecs, rep.chunks_embedded = embed(embedder, identity, [c.context_text() for c in todo], progress)
    rep.timings["embed"] = time.perf_counter() - t_emb
    tok_thread.join()
    if len(tokens_of) != len(todo):
        tokens_of = {c.chunk_id: tokenize(c.context_text()) for c in todo}
    dim = int(vecs.shape[1]) if len(todo) else embedder.dim
    changes, pos = [], 0
    for d in order:
        cs = new_chunks[d]
        changes.append(DocChange(meta=docs[d], chunks=cs, vectors=vecs[pos : pos + len(cs)], tokens=[tokens_of[c.chunk_id] for c in cs]))
        pos += len(cs)
    t_idx = time.perf_counter()
    progress.stage("indexing")
    rep.generation = store.apply(identity, dim, changes, deletes, extra={"parsing": parsing})
    rep.timings["index"] = time.perf_counter() - t_idx
    rep.chunks_total = _milvus_chunk_total(store)
    rep.seconds = time.perf_counter() - t0
    return rep


def _milvus_chunk_total(store) -> int:
    return sum(int(e["chunks"]) for e in store.iter_docs(["doc_id", "chunks"]))


def remove_documents(doc_ids: list[str], settings: Settings, lock_timeout: float = 0) -> IngestReport:
    return ingest([], settings, remove_ids=doc_ids, lock_timeout=lock_timeout)
