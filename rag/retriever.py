"""Stage 5: hybrid retrieval (FAISS dense + jieba BM25, reciprocal rank fusion, lexical re-ranking),
filters (city/province, year), per-document coverage for comparative questions.

`Retriever` is the one implementation shared by `rag ask`, the chat app and `rag eval`;
`as_langchain()` wraps it as a LangChain `BaseRetriever` for users' own chains.
"""
from __future__ import annotations

import math
import threading
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import Settings
from .index import IndexError_
from .places import people_named, person_english
from .plan import MAX_QUERY_CHARS, analyze, clean_question
from .store import Snapshot, open_store
from .textproc import best_heading, domain_terms, mentions, normalise, tokenize, unit_pattern
from .types import DocMeta, Hit, QuestionPlan

Query = QuestionPlan  # the retriever reads the question's plan (rag.plan); the old name stays for callers


def check_k(k: Any) -> int:
    """`k` as a non-negative int: 3 and "3" are 3; 0 asks for nothing; anything else is a clear ValueError
    (never a TypeError from deep inside the search)."""
    if isinstance(k, bool):
        raise ValueError(f"k must be a whole number of documents, got {k!r}")
    if isinstance(k, str):
        s = k.strip()
        if not s.isdigit():
            raise ValueError(f"k must be a whole number of documents, got {k!r}")
        k = int(s)
    if isinstance(k, float) and k.is_integer():
        k = int(k)
    if isinstance(k, np.integer):
        k = int(k)
    if not isinstance(k, int):
        raise ValueError(f"k must be a whole number of documents, got {k!r}")
    if k < 0:
        raise ValueError(f"k must be 0 or more, got {k}")
    return k


@dataclass
class SearchResult:
    query: Query
    hits: list[Hit]
    timings_ms: dict[str, float]
    generation: str = ""
    rank_features: dict[str, dict[str, float]] = field(default_factory=dict)  # chunk id -> learned-ranking inputs


class Retriever:
    def __init__(self, settings: Settings, embedder=None):
        self.settings = settings
        self.store = open_store(settings)
        self._embedder = embedder
        self._gen: Snapshot | None = None
        self._gen_name: str | None = None
        self._df: dict[str, int] | None = None
        self._df_gen: str | None = None
        self._idf: dict[str, float] = {}  # per index generation
        self._weights: dict[tuple, float] = {}  # term_weight() per index generation
        self._idf_gen: str | None = None
        self._norm_cache: dict = {}
        self._people: tuple[object, dict[str, str]] = (None, {})
        self._ranker = None
        self._lock = threading.Lock()
        self._local = threading.local()  # .gen: the generation pinned by the search running in this thread
        self._current_sig: tuple | None = None  # os.stat of CURRENT when it was last read

    # ------------------------------------------------------------ loading
    @property
    def embedder(self):
        if self._embedder is None:
            from .embedder import make_embedder

            self._embedder = make_embedder(self.settings.embedder)
        return self._embedder

    def generation(self) -> Snapshot:
        """The current index generation; reloaded when an ingest has published a new one.

        Inside a search the generation is pinned (one consistent state: row numbers of one generation never
        index another's chunks). Otherwise CURRENT is stat-ed, and read only when it changed (it is replaced,
        never rewritten in place): idf()/coverage() call this hundreds of times per question."""
        pinned = getattr(self._local, "gen", None)
        if pinned is not None:
            return pinned
        sig = self.store.signature()
        if self._gen is not None and sig is not None and sig == self._current_sig:
            return self._gen
        name = self.store.current_name()
        if self._gen is not None and name == self._gen_name:
            self._current_sig = sig
            return self._gen
        with self._lock:
            name = self.store.current_name()
            if self._gen is None or name != self._gen_name:
                gen = self.store.load(expect_embedder=self.embedder.identity)
                self._gen, self._gen_name, self._df = gen, gen.name, None
            self._current_sig = sig
        return self._gen

    @contextmanager
    def pinned(self):
        """Use one generation for everything inside (this thread), whatever an ingest publishes meanwhile."""
        if getattr(self._local, "gen", None) is not None:
            yield self._local.gen
            return
        self._local.gen = self.generation()
        try:
            yield self._local.gen
        finally:
            self._local.gen = None

    def document_frequencies(self) -> dict[str, int]:
        """Passages per lexical term, from the backend (bm25s' inverted index, or the Milvus documents' term counts)."""
        gen = self.generation()
        if self._df is None or self._df_gen != gen.name:  # per generation: another thread may have reloaded
            self._df_gen = gen.name
            self._df = gen.document_frequencies()
        return self._df

    def _term_caches(self) -> tuple[Snapshot, dict[str, float], dict[tuple, float]]:
        """The generation and its idf and term-weight caches (emptied when another generation is current)."""
        gen = self.generation()
        if self._idf_gen != gen.name:
            self._idf, self._weights, self._idf_gen = {}, {}, gen.name
        return gen, self._idf, self._weights

    def idf(self, term: str) -> float:
        gen, cache, _ = self._term_caches()
        w = cache.get(term)
        if w is None:
            n = max(1, len(gen.chunks))
            d = self.document_frequencies().get(term, 0)
            w = cache[term] = math.log(1 + (n - d + 0.5) / (d + 0.5))
        return w

    # ------------------------------------------------------------ query analysis
    def cities(self) -> list[str]:
        return sorted({m.city for m in self.generation().docs.values() if m.city})

    def people(self) -> dict[str, str]:
        """The deputies and members the indexed replies answer, by how English writes them: yue zhaoyang -> 岳朝阳."""
        gen = self.generation()
        if self._people[0] is not gen:  # once per index generation
            names = {n for m in gen.docs.values() for n in people_named(m.addressee)}
            self._people = (gen, {en: n for n in sorted(names) if (en := person_english(n))})
        return self._people[1]

    def analyze(self, question: str, cities: list[str] | None = None, years: list[str] | None = None) -> QuestionPlan:
        """The question's plan (rag.plan.analyze) against this index's places."""
        return analyze(question, self, cities, years)

    def doc_meta(self, doc_id: str) -> DocMeta | None:
        return self.generation().docs.get(doc_id)

    def allowed_rows(self, q: Query):
        """What passes the filters, in the backend's terms (FAISS: the row ids; Milvus: a filter expression),
        or None for no filter."""
        if not q.cities and not q.years:
            return None
        return self.generation().filter_rows(cities=q.cities, years=q.years)

    # ------------------------------------------------------------ scoring
    def _dense(self, qvec: np.ndarray, allowed, n: int) -> list[tuple[int, float]]:
        """(row, cosine) of the n nearest passages passing the filter (the backend's own search: FAISS or Milvus)."""
        return self.generation().search_dense(qvec, allowed, n)

    def _bm25(self, tokens: list[str], allowed, n: int) -> list[tuple[int, float]]:
        """(row, BM25 score > 0) of the n best passages passing the filter (bm25s, or Milvus's BM25 function)."""
        return self.generation().search_lexical(tokens, allowed, n)

    def coverage(self, q, text: str) -> float:
        """IDF-weighted share of the key terms of `q` (a QuestionPlan or one of its PlanParts) in text (0..1)."""
        return self._coverage_norm(q, normalise(text).lower())

    def weighted_terms(self, q, t: str) -> list[tuple[float, bool]]:
        """(weight, present in t) of each key term of `q`; `t` normalised and lower-cased. A term with equivalents
        weighs what the documents' wording of it weighs and is present when any equivalent is."""
        out = []
        for term in q.terms:
            alts = q.alts.get(term)
            w = self.term_weight(term, alts) if alts else self.idf(term)
            out.append((w, term in t or bool(alts and any(a in t for a in alts))))
        return out

    def _coverage_norm(self, q, t: str) -> float:
        terms = self.weighted_terms(q, t)
        total = sum(w for w, _ in terms)
        return sum(w for w, present in terms if present) / total if total else 0.0

    def missing(self, q, text: str) -> float:
        """The weight of the most specific key term of `q` that `text` lacks, as a share of the weightiest term's
        (0 when every term is there): a passage without 天使 is not about 天使投资基金, whatever else it shares."""
        terms = self.weighted_terms(q, normalise(text).lower())
        best = max((w for w, _ in terms), default=0.0)
        return max((w for w, present in terms if not present), default=0.0) / best if best else 0.0

    def known(self, word: str) -> bool:
        """Is `word` (or every piece jieba cuts it into) a term of the indexed passages?"""
        df = self.document_frequencies()
        if df.get(word, 0) > 0:
            return True
        toks = tokenize(word, for_search=False)
        return len(toks) > 1 and all(df.get(t, 0) > 0 for t in toks)

    def term_weight(self, term: str, alts: tuple[str, ...]) -> float:
        """A word with equivalents weighs what the documents' commonest wording of it weighs (营收 as 营业收入):
        a word the documents never use would otherwise get the highest weight of all. Computed once per term and
        index generation: coverage() asks it for every term of every candidate passage."""
        _, _, cache = self._term_caches()
        key = (term, tuple(alts))
        w = cache.get(key)
        if w is None:
            w = cache[key] = self._term_weight(term, alts)
        return w

    def _term_weight(self, term: str, alts: tuple[str, ...]) -> float:
        df = self.document_frequencies()
        weights = []
        for a in alts:
            if df.get(a, 0) > 0:
                weights.append(self.idf(a))
            else:  # a phrase jieba cuts in pieces (获得贷款): its rarest piece, when every piece occurs
                toks = tokenize(a, for_search=False)
                if toks and all(df.get(x, 0) > 0 for x in toks):
                    weights.append(max(self.idf(x) for x in toks))
        return min(weights) if weights else self.idf(term)

    def _cached_norm(self, key, text_of) -> str:
        """normalise(...).lower() of an indexed chunk's text or context, once per index generation."""
        gen = self.generation()
        cache = self._norm_cache
        if cache.get("gen") != gen.name:
            cache.clear()
            cache["gen"] = gen.name
        t = cache.get(key)
        if t is None:
            t = cache[key] = normalise(text_of(gen)).lower()
        return t

    def _row_text(self, row: int) -> str:
        """An indexed chunk's text, normalised and lower-cased once per index generation."""
        return self._cached_norm(row, lambda gen: gen.chunks[row].text)

    def coverage_row(self, q: Query, row: int) -> float:
        """coverage() of an indexed chunk (its normalised text cached)."""
        return self._coverage_norm(q, self._row_text(row))

    def search(
        self,
        question: str,
        k: int | None = None,
        cities: list[str] | None = None,
        years: list[str] | None = None,
        mode: str = "hybrid",
        query: Query | None = None,
        with_features: bool = False,
    ) -> SearchResult:
        with self.pinned():  # one generation for the whole search
            timings: dict[str, float] = {}
            t0 = time.perf_counter()
            gen = self.generation()
            timings["load"] = (time.perf_counter() - t0) * 1000
            cfg = self.settings.retrieval
            k = cfg.k if k is None else check_k(k)
            q = query or self.analyze(question, cities, years)
            if k == 0 or (q.unknown_places and not q.cities):
                return SearchResult(q, [], timings, gen.name)
            allowed = self.allowed_rows(q)
            n_cand = max(cfg.candidates, k * 4)
            if q.comparative:
                n_cand = max(n_cand, 200)
            dense: list[tuple[int, float]] = []
            sparse: list[tuple[int, float]] = []
            if mode in ("hybrid", "dense"):
                t = time.perf_counter()
                qvec = np.asarray(self.embedder.embed_array([q.search_text], is_query=True)[0], dtype=np.float32)
                timings["embed"] = (time.perf_counter() - t) * 1000
                t = time.perf_counter()
                dense = self._dense(qvec, allowed, n_cand)
                timings["dense"] = (time.perf_counter() - t) * 1000
            if mode in ("hybrid", "bm25"):
                t = time.perf_counter()
                sparse = self._bm25(tokenize(q.lexical_text), allowed, n_cand)
                timings["bm25"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            fused: dict[int, float] = {}
            src: dict[int, dict[str, int]] = {}
            dense_sim: dict[int, float] = {}
            for name, lst, w in (("dense", dense, cfg.dense_weight), ("bm25", sparse, cfg.bm25_weight)):
                for rank, (row, score) in enumerate(lst):
                    fused[row] = fused.get(row, 0.0) + w / (cfg.rrf_k + rank + 1)
                    src.setdefault(row, {})[name] = rank + 1
                    if name == "dense":
                        dense_sim[row] = score
            # comparative questions keep the coverage ranking: the learned one was fitted to put the one passage
            # holding a question's answer first, and a comparative answer needs every document's best passage
            # (with it, 营口's 首贷 passage fell behind its others and the city was dropped)
            learned = mode == "hybrid" and cfg.ranking == "learned" and not q.comparative
            feats: dict[int, dict[str, float]] = {}
            if mode == "hybrid" and (with_features or learned):
                feats = self._rank_features(q, fused, dense, sparse)
            if learned:
                # final ranking: the learned probability that the passage holds the answer (rag.rank)
                ranker = self.ranker
                scored = {row: ranker.score(feats[row]) + 1e-6 * f for row, f in fused.items()}
            elif mode == "hybrid":
                # final ranking: fused rank plus how much of the question's key vocabulary the passage holds
                scored = {row: f + cfg.coverage_weight * self.coverage_row(q, row) for row, f in fused.items()}
            else:
                scored = fused
            order = sorted(scored, key=lambda r: -scored[r])
            if q.comparative and mode == "hybrid":
                order = self._per_document(order, scored, q, k)
            elif mode == "hybrid" and q.kind == "section":
                order = self._section_first(order, q)
            if not q.comparative:
                order = order[:k]
            hits = [
                Hit(chunk=gen.chunks[r], score=float(scored[r]), rank=i + 1, sources=src.get(r, {}), dense=dense_sim.get(r, 0.0), coverage=self.coverage_row(q, r))
                for i, r in enumerate(order)
            ]
            timings["fuse"] = (time.perf_counter() - t) * 1000
            timings["total"] = (time.perf_counter() - t0) * 1000
            return SearchResult(q, hits, timings, gen.name, {gen.chunks[r].chunk_id: f for r, f in feats.items()})

    @property
    def ranker(self):
        if self._ranker is None:
            from .rank import load_ranker

            self._ranker = load_ranker(self.settings.retrieval.ranker or None)
        return self._ranker

    def _context_text(self, row: int) -> str:
        """An indexed chunk's context (city, issuer, title, section headings), normalised once per generation."""
        def context(gen) -> str:
            c = gen.chunks[row]
            return " ".join([c.city, c.issuer, c.title, *c.section_path])

        return self._cached_norm(("ctx", row), context)

    def _rank_features(self, q: Query, fused: dict[int, float], dense: list[tuple[int, float]], sparse: list[tuple[int, float]]) -> dict[int, dict[str, float]]:
        from .rank import plan_fit, rank_features

        gen = self.generation()
        d_rank = {row: i + 1 for i, (row, _) in enumerate(dense)}
        d_sim = dict(dense)
        b_rank = {row: i + 1 for i, (row, _) in enumerate(sparse)}
        b_score = dict(sparse)
        b_best = sparse[0][1] if sparse else 0.0
        d_best = dense[0][1] if dense else 0.0
        f_best = max(fused.values(), default=0.0)
        fit = plan_fit(q, self._coverage_norm)  # what the plan asks, read once for every candidate
        out = {}
        for row, f in fused.items():
            c = gen.chunks[row]
            out[row] = rank_features(
                b_rank.get(row), b_score.get(row, 0.0), b_best, d_rank.get(row), d_sim.get(row, 0.0), d_best, f, f_best,
                self.coverage_row(q, row), self._coverage_norm(q, self._context_text(row)), len(c.text),
                bool(c.section_path) and c.section_path[0] == "前言",
                fit(self._row_text(row), c.text, c.date),
            )
        return out

    def _per_document(self, order: list[int], scored: dict[int, float], q: Query, k: int) -> list[int]:
        """Comparative questions: the best passages of every document that has relevant evidence."""
        gen = self.generation()
        per = self.settings.retrieval.per_doc_comparative
        by_doc: dict[str, list[int]] = {}
        for r in order:
            by_doc.setdefault(gen.chunks[r].doc_id, []).append(r)
        best_cov = {d: max(self.coverage_row(q, r) for r in rows[:3]) for d, rows in by_doc.items()}
        top_cov = max(best_cov.values(), default=0.0)
        # anchor terms: the most specific words of the question (首贷, 小巨人); a document holding one is relevant
        df = self.document_frequencies()
        present = [t for t in q.terms if df.get(t, 0) > 0 and len(t) >= 2]
        domain = [t for t in present if t in domain_terms()]
        max_idf = max((self.idf(t) for t in present), default=0.0)
        cfg_anchor = self.settings.retrieval.anchor_idf_share
        floor = self.settings.retrieval.comparative_min_coverage
        # the field's names and the question's most specific words, either of which makes a document relevant
        # (续贷周转的转贷或应急周转资金: 续贷 is a field's name, 转贷 and 应急 the rarest words)
        anchors = list(dict.fromkeys(domain + [t for t in present if self.idf(t) >= cfg_anchor * max_idf]))

        def has_anchor(d: str) -> bool:
            return any(a in normalise(gen.chunks[r].text) for r in by_doc[d][:3] for a in anchors)

        if anchors:  # the question has specific words: a relevant document contains one of them
            keep = [d for d in by_doc if best_cov[d] >= floor and has_anchor(d)]
        else:
            keep = [d for d in by_doc if best_cov[d] >= max(0.3, 0.6 * top_cov)]
        whole = q.whole or (q.parts[0] if q.parts else None)
        quoted = whole.quoted if whole else []
        if quoted:  # “企业家日”: only the documents that name it
            keep = [d for d in keep if all(any(mentions(self._row_text(r), p) for r in by_doc[d]) for p in quoted)]
            for d in keep:  # the passages naming it come first
                by_doc[d].sort(key=lambda r: not all(mentions(self._row_text(r), p) for p in quoted))
        if q.cities:  # every place the question names gets its line, when a passage of it is about the question at all
            # (信阳、岳阳、沈阳三地…: the anchors, the question's rarest words, may be in none of them; 武汉的“汉融通”和
            # 威海环翠区的政金企对接平台: a quote may be one place's)
            for city in q.cities:
                mine = [d for d in by_doc if gen.chunks[by_doc[d][0]].city == city]
                if mine and not any(d in keep for d in mine):
                    best = max(mine, key=lambda d: scored[by_doc[d][0]])
                    if best_cov[best] >= floor:
                        keep.append(best)
        unit = unit_pattern(whole.unit) if whole and whole.asks_number else None
        if unit is not None:  # 分别有多少家: in each document, the passages stating a figure of that kind first
            for d in keep:
                by_doc[d].sort(key=lambda r: not unit.search(gen.chunks[r].text))
        keep.sort(key=lambda d: -scored[by_doc[d][0]])
        # best passage of every document first, then the second ones: top-k covers as many documents as possible
        out: list[int] = []
        for i in range(per):
            out.extend(by_doc[d][i] for d in keep if len(by_doc[d]) > i)
        return out

    def _section_first(self, order: list[int], q: Query) -> list[int]:
        """A question about a whole section (沈阳在…方面做了哪些工作?) whose heading one of the top passages is
        under: that section's passages first, in document order (the answer is all of them, not the 3 likeliest)."""
        gen = self.generation()
        found = best_heading([gen.chunks[r].section_path for r in order[:3]], q.text, self.settings.retrieval.section_match)
        if found is None:
            return order
        c, depth = gen.chunks[order[found[0]]], found[1]
        section = self._section_rows(c.doc_id, c.section_path[:depth])
        inside = set(section)
        return section + [r for r in order if r not in inside]

    def _section_rows(self, doc_id: str, path: list[str] | tuple[str, ...]) -> list[int]:
        gen = self.generation()
        n = len(path)
        return [i for i in gen.rows_of(doc_id) if tuple(gen.chunks[i].section_path[:n]) == tuple(path)]

    def section_chunks(self, doc_id: str, path: list[str] | tuple[str, ...]) -> list:
        """The chunks of one document whose section path starts with `path`, in document order."""
        gen = self.generation()
        return [gen.chunks[i] for i in self._section_rows(doc_id, path)]

    def as_langchain(self, k: int | None = None):
        from .lc import RagLangChainRetriever

        return RagLangChainRetriever(retriever=self, k=self.settings.retrieval.k if k is None else check_k(k))


__all__ = ["Retriever", "Query", "SearchResult", "IndexError_", "MAX_QUERY_CHARS", "clean_question"]
