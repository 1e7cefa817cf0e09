"""Scale benchmark: the index and the hybrid retriever at 10^3 … 10^6 chunks on this machine.

    .venv/bin/python benchmarks/scale.py [--sizes 1e3,1e4,5e4,1e5,1e6] [--queries 140] [--out benchmarks/out]

Synthetic but realistic chunks: sentences of the real replies (data/replies, data/more-replies) recombined
3–8 at a time, with the metadata of real replies (cities, titles, years). Vectors: the real sentences are
embedded once with the project's embedder; a chunk's vector is a perturbation of its first sentence's
vector mixed with its other sentences' and Gaussian noise shaped like the real vectors (see synth_vectors),
so dense and lexical signals agree as in a real index (cached in .cache/scale/ as .npy). Token lists: the jieba tokens of its sentences, as ingest would produce.

Per size it measures
- build: IndexStore.write_generation (FAISS + bm25s + chunk store), split into FAISS and BM25 time; size on disk;
- open + query, in a fresh process (so memory is the index's): open time, RSS after the queries and peak RSS,
  query p50/p95 of the real rag.retriever.Retriever.search (hybrid: FAISS + bm25s get_scores + fusion +
  coverage re-ranking) on the gold questions, with the query vectors precomputed by the real embedder
  (the embedder's own time is reported separately: it does not depend on the index size);
- the approximate index: recall@10 of HNSW (efSearch 16…256) against exact search, unfiltered and with a
  city filter (IDSelectorBatch, as the retriever does), and single-query latency of flat vs HNSW.
Prints tables, writes benchmarks/out/scale.json and benchmarks/out/scale.png.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CACHE = REPO / ".cache" / "scale"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MIX, GAUSS = 0.5, 0.8  # weights of the other sentences and of the Gaussian part (see synth_vectors)
EF_VALUES = (16, 32, 64, 128, 256)


# ------------------------------------------------------------------ helpers
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    cur = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            cur = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cur, peak


def dir_mb(p: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in p.rglob("*"):
        if f.is_file():
            key = f.relative_to(p).parts[0]
            out[key] = out.get(key, 0.0) + f.stat().st_size / 2**20
    out["total"] = sum(out.values())
    return out


def fmt_n(n: int) -> str:
    return f"10^{int(round(np.log10(n)))}" if n >= 1000 and 10 ** int(round(np.log10(n))) == n else f"{n:,}"


# ------------------------------------------------------------------ the real material
def sentence_pool() -> tuple[list[str], list[dict]]:
    """Sentences of the real replies (and the documents' metadata), deduplicated."""
    from rag.loader import read_file
    from rag.parser import parse, split_sentences

    sents: dict[str, None] = {}
    metas: list[dict] = []
    for f in sorted((REPO / "data" / "replies").glob("*.txt")) + sorted((REPO / "data" / "more-replies").glob("*.txt")):
        doc = parse(read_file(f))
        m = doc.meta
        metas.append({"city": m.city, "title": m.title, "issuer": m.issuer})
        for line in doc.text.split("\n"):
            for s in split_sentences(line):
                s = s.strip()
                if len(s) >= 8:
                    sents[s] = None
                # long sentences also contribute their clauses: more distinct material
                if len(s) > 60:
                    for c in s.replace("，", ",").split(","):
                        if len(c) >= 12:
                            sents[c + "。"] = None
    return list(sents), metas


def embed_cached(texts: list[str], name: str, is_query: bool) -> np.ndarray:
    from rag.config import load_settings
    from rag.embedder import make_embedder

    emb = make_embedder(load_settings().embedder)
    key = hashlib.sha1(("\n".join(texts) + emb.identity + str(is_query)).encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{key}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"embedding {len(texts)} {name} once (cached in {path.relative_to(REPO)}) …", flush=True)
    t = time.perf_counter()
    out = np.concatenate([emb.embed_array(texts[i : i + 64], is_query=is_query) for i in range(0, len(texts), 64)])
    print(f"  {len(texts) / (time.perf_counter() - t):.1f} texts/s", flush=True)
    np.save(path, out)
    return out


def gold_questions(n: int) -> list[str]:
    qs = [json.loads(ln)["question"] for ln in (REPO / "data" / "gold" / "qa.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
    return qs[:n]


# ------------------------------------------------------------------ synthetic chunks
def synth(n: int, sents: list[str], svecs: np.ndarray, stoks: list[list[str]], metas: list[dict], seed: int = 7):
    """n chunks in documents of ~20 chunks: (docs, chunks, token_lists, vectors)."""
    from rag.textproc import tokenize
    from rag.types import Chunk, DocMeta

    rng = np.random.default_rng(seed + n)
    k = rng.integers(3, 9, size=n)
    idx = rng.integers(0, len(sents), size=int(k.sum()))
    starts = np.concatenate([[0], np.cumsum(k)])
    per_doc = 20
    n_docs = (n + per_doc - 1) // per_doc
    head_tokens: dict[int, list[str]] = {}
    docs: dict[str, DocMeta] = {}
    doc_meta_idx = rng.integers(0, len(metas), size=n_docs)
    years = rng.integers(2018, 2025, size=n_docs)
    for d in range(n_docs):
        m = metas[doc_meta_idx[d]]
        docs[f"d{d:07d}"] = DocMeta(doc_id=f"d{d:07d}", city=m["city"], issuer=m["issuer"], title=m["title"], date=f"{years[d]}-06-30", path=f"/synthetic/d{d:07d}.txt", content_hash=f"{d:064x}")
    chunks: list[Chunk] = []
    tokens: list[list[str]] = []
    for i in range(n):
        d = i // per_doc
        m = metas[doc_meta_idx[d]]
        sel = idx[starts[i] : starts[i + 1]]
        text = "".join(sents[j] for j in sel)
        doc_id = f"d{d:07d}"
        c = Chunk(chunk_id=f"{doc_id}#{i % per_doc}", doc_id=doc_id, ordinal=i % per_doc, text=text, section_path=[f"第{i % per_doc + 1}部分"], city=m["city"], title=m["title"], issuer=m["issuer"], date=f"{years[d]}-06-30")
        chunks.append(c)
        ht = head_tokens.get(doc_meta_idx[d])
        if ht is None:
            ht = head_tokens[doc_meta_idx[d]] = tokenize(" ".join(x for x in (m["city"], m["issuer"], m["title"] and f"《{m['title']}》") if x))
        toks = list(ht)
        for j in sel:
            toks.extend(stoks[j])
        tokens.append(toks)
    vec_path = CACHE / f"vectors-v2-{n}-{seed}-{hashlib.sha1(svecs.tobytes()).hexdigest()[:8]}.npy"
    if vec_path.exists():
        vectors = np.load(vec_path)
    else:
        vectors = synth_vectors(n, svecs, idx, starts, rng)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(vec_path, vectors)
    return docs, chunks, tokens, vectors


def synth_vectors(n: int, svecs: np.ndarray, idx: np.ndarray, starts: np.ndarray, rng) -> np.ndarray:
    """Vectors with the geometry of real e5 embeddings. e5's space is strongly anisotropic (the mean of the
    sentence vectors has norm ~0.94; what tells passages apart is the residual d = v - mean, |d| ~ 0.33-0.37).
    A plain average of sentence vectors shrinks d by sqrt(k) and makes every chunk a near-tie of every other
    (useless for judging an approximate index). So: d = d(first sentence) + MIX * d(mixture of the others) +
    GAUSS * (a Gaussian with the residuals' covariance), rescaled to |d| ~ N(0.35, 0.04), v = norm(mean + d).
    Check: real questions against 1,420 synthetic chunks give top-1/10/100 similarities 0.913/0.893/0.875
    against 0.932/0.895/0.875 for the 1,420 real sentences."""
    from scipy import sparse

    mu = svecs.mean(axis=0)
    D = (svecs - mu).astype(np.float32)
    k = np.diff(starts)
    main = idx[starts[:-1]]
    w = rng.uniform(0.5, 1.5, size=len(idx)).astype(np.float32)
    w[starts[:-1]] = 0.0  # the first sentence is the main one, the others are mixed in
    W = sparse.csr_matrix((w, (np.repeat(np.arange(n), k), idx)), shape=(n, len(svecs)))
    out = np.empty((n, svecs.shape[1]), dtype=np.float32)
    for a in range(0, n, 50_000):
        b = min(n, a + 50_000)
        mix = np.asarray(W[a:b] @ D, dtype=np.float32)
        mix /= np.linalg.norm(mix, axis=1, keepdims=True) + 1e-9
        g = rng.standard_normal((b - a, 256), dtype=np.float32) @ D[rng.integers(0, len(D), 256)]
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        dm = D[main[a:b]]
        d = dm / np.linalg.norm(dm, axis=1, keepdims=True) + MIX * mix + GAUSS * g
        r = np.clip(rng.normal(0.35, 0.04, size=(b - a, 1)), 0.2, 0.5).astype(np.float32)
        d *= r / np.linalg.norm(d, axis=1, keepdims=True)
        v = mu + d
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


# ------------------------------------------------------------------ build
def build(index_dir: Path, docs, chunks, tokens, vectors, identity: str) -> dict:
    import rag.index as ri

    timings: dict[str, float] = {}
    orig_faiss, orig_bm25 = ri.build_faiss, ri.Postings.__dict__["from_tokens"]

    def timed(name, fn):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timings[name] = time.perf_counter() - t

        return run

    ri.build_faiss, ri.Postings.from_tokens = timed("faiss", orig_faiss), timed("bm25", ri.Postings.from_tokens)  # BM25 postings
    try:
        t = time.perf_counter()
        name = ri.IndexStore(index_dir).write_generation(identity, vectors.shape[1], docs, chunks, vectors, tokens)
        timings["total"] = time.perf_counter() - t
    finally:
        ri.build_faiss = orig_faiss
        ri.Postings.from_tokens = orig_bm25
    gdir = index_dir / name
    manifest = json.loads((gdir / "manifest.json").read_text(encoding="utf-8"))
    return {"build_s": timings, "disk_mb": dir_mb(index_dir), "faiss": manifest["faiss"]}


# ------------------------------------------------------------------ query worker (a fresh process)
def worker(index_dir: str, n_questions: int) -> dict:
    """Open the index with the real Retriever and answer the gold questions; report times and memory."""
    from rag.config import load_settings
    from rag.embedder import make_embedder
    from rag.retriever import Retriever

    real = make_embedder(load_settings().embedder)

    class PrecomputedQueries:
        """The real embedder, with each query's vector computed once before the timed pass."""

        def __init__(self):
            self.table: dict[str, np.ndarray] = {}
            self.embed_ms: list[float] = []

        identity = property(lambda self: real.identity)
        dim = property(lambda self: real.dim)

        def embed_array(self, texts, is_query=False):
            missing = [t for t in texts if t not in self.table]
            if missing:
                t0 = time.perf_counter()
                vecs = real.embed_array(missing, is_query=is_query)
                self.embed_ms.append((time.perf_counter() - t0) * 1000 / len(missing))
                self.table.update(zip(missing, vecs))
            return np.stack([self.table[t] for t in texts])

    emb = PrecomputedQueries()
    real.embed_array(["预热"], is_query=True)
    base_rss = rss_mb()[0]
    settings = load_settings().with_overrides(index_dir=index_dir)
    r = Retriever(settings, embedder=emb)
    t = time.perf_counter()
    gen = r.generation()
    open_s = time.perf_counter() - t
    open_rss = rss_mb()[0]
    qs = gold_questions(n_questions)
    for q in qs:  # warm-up: embeds each question once, builds the document frequencies
        r.search(q)
    emb.embed_ms = emb.embed_ms[1:] or emb.embed_ms
    totals, parts = [], {"dense": [], "bm25": [], "fuse": []}
    for _ in range(2):
        for q in qs:
            t = time.perf_counter()
            res = r.search(q)
            totals.append((time.perf_counter() - t) * 1000)
            for k in parts:
                parts[k].append(res.timings_ms.get(k, 0.0))
    e2e = []  # the whole search again, the question embedded each time (what a user waits for)
    for q in qs[:40]:
        emb.table.clear()
        t = time.perf_counter()
        r.search(q)
        e2e.append((time.perf_counter() - t) * 1000)
    cur, peak = rss_mb()
    return {
        "with_embedding_ms": {"p50": pct(e2e, 50), "p95": pct(e2e, 95)},
        "chunks": len(gen.chunks),
        "faiss": gen.manifest.get("faiss"),
        "open_s": open_s,
        "query_ms": {"p50": pct(totals, 50), "p95": pct(totals, 95), "mean": statistics.mean(totals)},
        "parts_p50_ms": {k: pct(v, 50) for k, v in parts.items()},
        "parts_p95_ms": {k: pct(v, 95) for k, v in parts.items()},
        "embed_query_ms_p50": pct(emb.embed_ms, 50),
        "rss_mb": cur,
        "peak_rss_mb": peak,
        "rss_index_mb": open_rss - base_rss,
        "rss_process_base_mb": base_rss,
    }


def run_worker(index_dir: Path, n_questions: int) -> dict:
    p = subprocess.run([sys.executable, __file__, "--worker", str(index_dir), "--queries", str(n_questions)], capture_output=True, text=True, timeout=7200)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    return json.loads(p.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ approximate index vs exact
def ann_eval(vectors: np.ndarray, qvecs: np.ndarray, city_rows: np.ndarray, gen_index_path: Path | None) -> dict:
    import faiss

    n, dim = vectors.shape
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    _, exact = flat.search(qvecs, 10)

    def single_query_ms(index, params=None) -> float:
        faiss.omp_set_num_threads(1)  # as the retriever searches (one query: threads only contend)
        ts = []
        for q in qvecs:
            t = time.perf_counter()
            index.search(q.reshape(1, -1), 10, params=params) if params is not None else index.search(q.reshape(1, -1), 10)
            ts.append((time.perf_counter() - t) * 1000)
        return pct(ts, 50)

    out: dict = {"flat_ms_p50": single_query_ms(flat)}
    # filtered: rows of one city, as the retriever's IDSelectorBatch
    sel = faiss.IDSelectorBatch(city_rows)
    sub = faiss.IndexFlatIP(dim)
    sub.add(vectors[city_rows])
    _, exact_f = sub.search(qvecs, 10)
    exact_f = city_rows[exact_f]
    out["filter_rows"] = int(len(city_rows))
    out["flat_filtered_ms_p50"] = single_query_ms(flat, faiss.SearchParameters(sel=sel))
    del flat, sub
    gc.collect()
    if gen_index_path is not None and gen_index_path.exists():
        hnsw = faiss.read_index(str(gen_index_path))
        out["hnsw_build_s"] = None  # built by write_generation (see build times)
    else:
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80  # as rag.index.build_faiss
        t = time.perf_counter()
        hnsw.add(vectors)
        out["hnsw_build_s"] = time.perf_counter() - t
    out["hnsw"] = {}
    for ef in EF_VALUES:
        hnsw.hnsw.efSearch = ef
        _, approx = hnsw.search(qvecs, 10)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        _, approx_f = hnsw.search(qvecs, 10, params=params)
        recall_f = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx_f, exact_f)]))
        out["hnsw"][str(ef)] = {"recall@10": recall, "recall@10_filtered": recall_f, "ms_p50": single_query_ms(hnsw), "filtered_ms_p50": single_query_ms(hnsw, params)}
    return out


# ------------------------------------------------------------------ embedding throughput and threads
def embed_threads() -> dict:
    code = r"""
import os, sys, time, json
sys.path.insert(0, %r)
from rag.config import load_settings
from rag.embedder import make_embedder
from rag.loader import read_file
from rag.parser import parse
from rag.chunker import chunk_document
from pathlib import Path
chunks = [c for f in sorted(Path(%r).glob('*.txt')) for c in chunk_document(parse(read_file(f)))][:48]
texts = [c.context_text() + ' #bench' for c in chunks]
e = make_embedder(load_settings().embedder)
e.embed_array(texts[:2])
t = time.perf_counter(); c = os.times()
for i in range(0, len(texts), 16): e.embed_array(texts[i:i+16])
wall = time.perf_counter() - t; c2 = os.times()
print(json.dumps({"chunks_per_s": len(texts) / wall, "cpu_over_wall": ((c2.user - c.user) + (c2.system - c.system)) / wall, "threads": len(os.listdir('/proc/self/task'))}))
""" % (str(REPO), str(REPO / "data" / "replies"))
    out = {}
    for threads in ("1", ""):
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        if threads:
            env["OMP_NUM_THREADS"] = threads
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(p.stderr[-2000:])
        out["OMP_NUM_THREADS=1" if threads else "default"] = json.loads(p.stdout.strip().splitlines()[-1])
    out["cores"] = os.cpu_count()
    out["load_avg"] = os.getloadavg()
    return out


# ------------------------------------------------------------------ report
def table(rows: list[dict]) -> str:
    head = (
        f"{'chunks':>8} {'faiss':>12} {'build s':>8} {'(faiss':>7} {'bm25)':>7} {'disk MB':>8} {'open s':>7} {'RSS MB':>7} {'peak MB':>8} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'dense':>6} {'bm25':>6} {'fuse':>6} {'+embed p50':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        b, w = r["build"], r["query"]
        lines.append(
            f"{fmt_n(r['n']):>8} {b['faiss']:>12} {b['build_s']['total']:>8.1f} {b['build_s'].get('faiss', 0):>7.1f} {b['build_s'].get('bm25', 0):>7.1f} "
            f"{b['disk_mb']['total']:>8.1f} {w['open_s']:>7.2f} {w['rss_mb']:>7.0f} {w['peak_rss_mb']:>8.0f} {w['query_ms']['p50']:>7.1f} {w['query_ms']['p95']:>7.1f} "
            f"{w['parts_p50_ms']['dense']:>6.1f} {w['parts_p50_ms']['bm25']:>6.1f} {w['parts_p50_ms']['fuse']:>6.1f} {w['with_embedding_ms']['p50']:>10.1f}"
        )
    return "\n".join(lines)


def ann_table(rows: list[dict]) -> str:
    head = f"{'chunks':>8} {'flat ms':>8} {'flat+filter ms':>15} {'filter rows':>11} {'HNSW build s':>12}  " + "  ".join(f"ef={ef}: R@10 / R@10 filt / ms" for ef in EF_VALUES)
    lines = [head, "-" * len(head)]
    for r in rows:
        a = r.get("ann")
        if not a:
            continue
        cells = "  ".join(f"{a['hnsw'][str(ef)]['recall@10']:.3f} / {a['hnsw'][str(ef)]['recall@10_filtered']:.3f} / {a['hnsw'][str(ef)]['ms_p50']:.2f}".ljust(len(f"ef={ef}: R@10 / R@10 filt / ms")) for ef in EF_VALUES)
        hb = "(ingest)" if a.get("hnsw_build_s") is None else f"{a['hnsw_build_s']:.1f}"
        lines.append(f"{fmt_n(r['n']):>8} {a['flat_ms_p50']:>8.2f} {a['flat_filtered_ms_p50']:>15.2f} {a['filter_rows']:>11,} {hb:>12}  {cells}")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    ax = axes[0]
    ax.plot(ns, [r["build"]["build_s"]["total"] for r in rows], "o-", label="whole generation")
    ax.plot(ns, [r["build"]["build_s"].get("faiss", 0) for r in rows], "s--", label="FAISS")
    ax.plot(ns, [r["build"]["build_s"].get("bm25", 0) for r in rows], "^--", label="bm25s")
    ax.set_title("index build (s)")
    ax = axes[1]
    ax.plot(ns, [r["query"]["query_ms"]["p50"] for r in rows], "o-", label="hybrid p50")
    ax.plot(ns, [r["query"]["query_ms"]["p95"] for r in rows], "o--", label="hybrid p95")
    ax.plot(ns, [r["query"]["parts_p50_ms"]["dense"] for r in rows], "s:", label="FAISS p50")
    ax.plot(ns, [r["query"]["parts_p50_ms"]["bm25"] for r in rows], "^:", label="bm25 p50")
    ax.axhline(50, color="grey", lw=0.8)
    ax.set_title("query latency (ms), without query embedding")
    ax = axes[2]
    ax.plot(ns, [r["query"]["rss_mb"] for r in rows], "o-", label="RSS after queries")
    ax.plot(ns, [r["query"]["peak_rss_mb"] for r in rows], "o--", label="peak RSS")
    ax.plot(ns, [r["build"]["disk_mb"]["total"] for r in rows], "s-", label="disk")
    ax.axhline(1024, color="grey", lw=0.8)
    ax.set_title("memory and disk (MB)")
    ax = axes[3]
    for ef in EF_VALUES:
        pts = [(r["n"], r["ann"]["hnsw"][str(ef)]["recall@10"]) for r in rows if r.get("ann")]
        if pts:
            ax.plot(*zip(*pts), "o-", label=f"HNSW ef={ef}")
    ax.axhline(0.98, color="grey", lw=0.8)
    ax.set_title("recall@10 vs exact")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("chunks")
        ax.legend(fontsize=7)
    for ax in axes[:3]:
        ax.set_yscale("log")
    fig.suptitle(f"rag scale benchmark ({os.cpu_count()} cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ backends side by side (--backend milvus)
def backend_compare(n: int, sents, svecs, stoks, metas, qs: list[str], qvecs: np.ndarray, work: Path, identity: str, milvus_max: int = 10**9) -> dict:
    """faiss and Milvus Lite on the same n synthetic chunks, in this process: ingest rate, an incremental update of
    1% of the documents, query p50/p95 (dense, lexical, hybrid = the real Retriever.search, filtered by city),
    memory (RSS growth) and disk."""
    from rag.config import load_settings
    from rag.index import FaissStore, Postings
    from rag.milvus_store import MilvusStore
    from rag.retriever import Retriever
    from rag.store import DocChange
    from rag.textproc import tokenize
    from rag.types import DocMeta

    docs, chunks, tokens, vectors = synth(n, sents, svecs, stoks, metas)
    by_doc: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_doc.setdefault(c.doc_id, []).append(i)
    rng = np.random.default_rng(11)
    upd = sorted(rng.choice(sorted(by_doc), size=max(1, len(by_doc) // 100), replace=False))
    city = chunks[0].city
    qtoks = [tokenize(q) for q in qs]
    out: dict = {"n": n, "docs": len(docs), "updated_docs": len(upd)}

    class Pre:

        def __init__(self):
            self.table = dict(zip(qs, qvecs))

        identity = property(lambda self: identity)
        dim = property(lambda self: int(qvecs.shape[1]))

        def embed_array(self, texts, is_query=False):
            return np.stack([self.table[t] for t in texts])

    def timed_queries(snap, r: Retriever) -> dict:
        res: dict = {}
        flt = snap.filter_rows(cities=[city])
        for name, fn in (
            ("dense", lambda i: snap.search_dense(qvecs[i], None, 40)),
            ("lexical", lambda i: snap.search_lexical(qtoks[i], None, 40)),
            ("filtered dense+lexical", lambda i: (snap.search_dense(qvecs[i], flt, 40), snap.search_lexical(qtoks[i], flt, 40))),
            ("hybrid (Retriever.search)", lambda i: r.search(qs[i])),
        ):
            fn(0)
            ts = []
            for i in range(len(qs)):
                t = time.perf_counter()
                fn(i)
                ts.append((time.perf_counter() - t) * 1000)
            res[name] = {"p50": pct(ts, 50), "p95": pct(ts, 95)}
        return res

    for backend in ("faiss", "milvus") if n <= milvus_max else ("faiss",):
        gc.collect()
        rss0 = rss_mb()[0]
        d = work / f"cmp-{backend}-{n}"
        shutil.rmtree(d, ignore_errors=True)
        settings = load_settings().with_overrides(index_dir=str(d), **{"index.backend": backend, "index.batch_docs": 500})
        row: dict = {}
        t = time.perf_counter()
        if backend == "faiss":
            store = FaissStore(d)
            store.write_generation(identity, vectors.shape[1], docs, chunks, vectors, tokens)
        else:
            store = MilvusStore(settings)
            changes = [DocChange(docs[di], [chunks[i] for i in rows], vectors[rows], [tokens[i] for i in rows]) for di, rows in by_doc.items()]
            store.apply(identity, vectors.shape[1], changes, [])
        row["ingest_s"] = time.perf_counter() - t
        row["ingest_chunks_per_s"] = n / row["ingest_s"]
        # 1% of the documents change (new content hash, same passages re-embedded: the vectors are reused)
        new_docs = {di: DocMeta(**{**docs[di].to_dict(), "content_hash": docs[di].content_hash[:-8] + "feedbeef"}) for di in upd}
        t = time.perf_counter()
        if backend == "faiss":  # incremental: one new segment with those documents, tombstones for their old rows
            store.apply(identity, vectors.shape[1], {**docs, **new_docs},
                        [DocChange(new_docs[di], [chunks[i] for i in by_doc[di]], vectors[by_doc[di]], [tokens[i] for i in by_doc[di]]) for di in upd], [])
            row["update_1pct_s"] = time.perf_counter() - t
            row["disk_after_update_mb"] = dir_mb(d)["total"]
            # what the same update cost before segments: a whole new generation (FAISS + BM25 of every passage)
            rb = work / f"cmp-faiss-rebuild-{n}"
            t = time.perf_counter()
            FaissStore(rb).write_generation(identity, vectors.shape[1], {**docs, **new_docs}, chunks, vectors, tokens)
            row["rebuild_s"] = time.perf_counter() - t
            shutil.rmtree(rb, ignore_errors=True)
            t = time.perf_counter()
            Postings.from_tokens(tokens)
            row["bm25_postings_all_s"] = time.perf_counter() - t
            t = time.perf_counter()  # (the merge is timed after the queries, on the two-segment index)
        else:
            store.apply(identity, vectors.shape[1], [DocChange(new_docs[di], [chunks[i] for i in by_doc[di]], vectors[by_doc[di]], [tokens[i] for i in by_doc[di]]) for di in upd], [])
        if backend != "faiss":
            row["update_1pct_s"] = time.perf_counter() - t
        r = Retriever(settings, embedder=Pre())
        t = time.perf_counter()
        snap = r.generation()
        row["open_s"] = time.perf_counter() - t
        row["query_ms"] = timed_queries(snap, r)
        row["rss_growth_mb"] = rss_mb()[0] - rss0
        row["disk_mb"] = dir_mb(d)["total"] if d.exists() else 0.0
        if backend == "faiss":  # fold the update's segment and tombstones back into one segment
            t = time.perf_counter()
            store.compact()
            row["merge_s"] = time.perf_counter() - t
        print(f"  {backend}: {json.dumps(row)}", flush=True)
        out[backend] = row
        del r, snap, store
        if backend == "milvus":
            import rag.milvus_store as ms

            ms._CLIENTS.clear()
        shutil.rmtree(d, ignore_errors=True)
    return out


def backend_table(rows: list[dict]) -> str:
    head = f"{'chunks':>8} {'backend':>8} {'ingest s':>9} {'chunks/s':>9} {'1% upd s':>9} {'rebuild s':>9} {'merge s':>8} {'open s':>7} " + " ".join(
        f"{k[:14]:>16}" for k in ("dense p50/p95", "lexical p50/95", "filtered p50/95", "hybrid p50/p95")) + f" {'RSS+ MB':>8} {'disk MB':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        for b in ("faiss", "milvus"):
            if b not in r:
                lines.append(f"{fmt_n(r['n']):>8} {b:>8}  not run (--milvus-max)")
                continue
            x = r[b]
            q = x["query_ms"]
            cells = " ".join(f"{q[k]['p50']:>7.1f}/{q[k]['p95']:<8.1f}" for k in ("dense", "lexical", "filtered dense+lexical", "hybrid (Retriever.search)"))
            rebuild = f"{x['rebuild_s']:>9.1f}" if "rebuild_s" in x else f"{'-':>9}"
            merge = f"{x['merge_s']:>8.1f}" if "merge_s" in x else f"{'-':>8}"
            lines.append(f"{fmt_n(r['n']):>8} {b:>8} {x['ingest_s']:>9.1f} {x['ingest_chunks_per_s']:>9.0f} {x['update_1pct_s']:>9.2f} {rebuild} {merge} "
                         f"{x['open_s']:>7.2f} {cells} {x['rss_growth_mb']:>8.0f} {x['disk_mb']:>8.1f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1e3,1e4,5e4,1e5,1e6", help="comma-separated chunk counts (1e5 or 100000)")
    ap.add_argument("--queries", type=int, default=140, help="gold questions used as queries")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "out"))
    ap.add_argument("--workdir", default=None, help="where to build the indexes (default: a temp dir, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes (with --workdir)")
    ap.add_argument("--merge", action="store_true", help="replace these sizes' rows in an existing scale.json, keep the others")
    ap.add_argument("--no-ann", action="store_true", help="skip the recall@10 / latency table of the approximate index")
    ap.add_argument("--no-threads", action="store_true", help="skip the embedding thread measurement")
    ap.add_argument("--report-only", action="store_true", help="print the tables and redraw the plot of the saved scale.json")
    ap.add_argument("--backend", choices=["faiss", "milvus"], default="faiss",
                    help="milvus: compare the faiss and Milvus Lite backends at each size in the same run (ingest, 1%% update, queries, memory, disk)")
    ap.add_argument("--milvus-max", default="1e9", help="with --backend milvus: run Milvus Lite only up to this many chunks (faiss at every size)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.queries)))
        return
    if args.report_only:
        report(json.loads((Path(args.out) / "scale.json").read_text(encoding="utf-8")), Path(args.out), not args.no_ann)
        return

    from rag.config import load_settings
    from rag.embedder import make_embedder
    from rag.index import HNSW_THRESHOLD
    from rag.textproc import tokenize

    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity = make_embedder(load_settings().embedder).identity
    sents, metas = sentence_pool()
    print(f"{len(sents)} distinct real sentences/clauses from {len(metas)} replies", flush=True)
    svecs = embed_cached(sents, "sentences", is_query=False)
    stoks = [tokenize(s) for s in sents]
    qs = gold_questions(args.queries)
    qvecs = embed_cached(qs, "queries", is_query=True)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rag-scale-"))
    if args.backend == "milvus":
        rows = []
        try:
            for n in sizes:
                print(f"\n== {n:,} chunks: faiss and Milvus Lite", flush=True)
                rows.append(backend_compare(n, sents, svecs, stoks, metas, qs, qvecs, work, identity, int(float(args.milvus_max))))
                (out_dir / "scale-backends.json").write_text(json.dumps({"machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg()}, "sizes": rows}, indent=1), encoding="utf-8")
        finally:
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
        print("\nfaiss and Milvus Lite, same chunks, same process (query times in ms, p50/p95; hybrid = Retriever.search)")
        print(backend_table(rows))
        return
    results = {"machine": {"cores": os.cpu_count(), "load_avg_start": os.getloadavg()}, "hnsw_threshold": HNSW_THRESHOLD, "sizes": []}
    if args.merge and (out_dir / "scale.json").exists():  # keep the other sizes' rows of an earlier run
        prev = json.loads((out_dir / "scale.json").read_text(encoding="utf-8"))
        results["sizes"] = [r for r in prev.get("sizes", []) if r["n"] not in sizes]
        if prev.get("embedding"):
            results["embedding"] = prev["embedding"]
    if not args.no_threads:
        print("embedding threads …", flush=True)
        results["embedding"] = embed_threads()
        print(json.dumps(results["embedding"]), flush=True)
    try:
        for n in sizes:
            print(f"\n== {n:,} chunks", flush=True)
            t = time.perf_counter()
            docs, chunks, tokens, vectors = synth(n, sents, svecs, stoks, metas)
            print(f"  synthetic chunks in {time.perf_counter() - t:.1f} s", flush=True)
            index_dir = work / f"index-{n}"
            if index_dir.exists():
                shutil.rmtree(index_dir)
            b = build(index_dir, docs, chunks, tokens, vectors, identity)
            print(f"  build {b['build_s']} disk {b['disk_mb']['total']:.1f} MB ({b['faiss']})", flush=True)
            row = {"n": n, "build": b}
            city = chunks[0].city  # the rows of one city: what a question naming it filters to
            city_rows = np.array([i for i, c in enumerate(chunks) if c.city == city], dtype=np.int64)
            del docs, chunks, tokens
            gc.collect()
            w = run_worker(index_dir, args.queries)
            row["query"] = w
            print(f"  query p50 {w['query_ms']['p50']:.1f} ms p95 {w['query_ms']['p95']:.1f} ms, RSS {w['rss_mb']:.0f} MB (peak {w['peak_rss_mb']:.0f}), open {w['open_s']:.2f} s", flush=True)
            if not args.no_ann:
                gen_faiss = next(index_dir.glob("segments/seg-*/dense.faiss"))
                a = ann_eval(vectors, qvecs, city_rows, gen_faiss if b["faiss"] != "IndexFlatIP" else None)
                row["ann"] = a
                print(f"  ann {json.dumps(a)}", flush=True)
            results["sizes"] = sorted([r for r in results["sizes"] if r["n"] != n] + [row], key=lambda r: r["n"])
            del vectors
            gc.collect()
            if not args.keep:
                shutil.rmtree(index_dir, ignore_errors=True)
            (out_dir / "scale.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    report(results, out_dir, not args.no_ann)


def report(results: dict, out_dir: Path, ann: bool = True) -> None:
    rows = results["sizes"]
    if not rows:
        return
    print("\nIndex build, size, memory and hybrid query latency (query embedding excluded: p50 "
          f"{statistics.median([r['query']['embed_query_ms_p50'] for r in rows]):.0f} ms per question, independent of size)")
    print(table(rows))
    if ann:
        print("\nApproximate index (HNSW M=32, efConstruction=80) vs exact, 10 nearest, single queries")
        print(ann_table(rows))
    if results.get("embedding"):
        print("\nEmbedding (ingest):", json.dumps(results["embedding"]))
    plot(rows, out_dir / "scale.png")
    print(f"\nwrote {out_dir / 'scale.json'} and {out_dir / 'scale.png'}")


if __name__ == "__main__":
    main()
