"""The learned final ranking of retrieved passages (`[retrieval] ranking = "learned"`).

Each candidate passage of the fused dense + BM25 lists gets features (its BM25 and dense ranks and scores
relative to the question's best, its fused score, the question's key-term coverage of its text and of its
context: city, title and section headings), and a logistic regression gives the probability that it holds the
answer. Trained by `rag train` on the gold sets' evidence, pairwise (within a question, a passage holding the
evidence against those that do not), validated with places held out, shipped as `rag/data/ranker.json` (the
same JSON linear model as the answer decision, rag.decide).
"""
from __future__ import annotations

import math
from pathlib import Path

from .decide import Decider, DeciderError, fit_linear

DEFAULT_RANKER = Path(__file__).parent / "data" / "ranker.json"

RANK_FEATURES = (
    "bm25_rr", "dense_rr", "bm25_rel", "dense", "dense_gap", "fused_rel", "coverage", "context_coverage",
    "in_bm25", "in_dense", "len_log", "preamble",
    # how the passage fits what the plan asks (rag.plan): every part covered, the asked kind of figure, year, head nouns
    "part_cov_min", "unit_asked", "unit_found", "year_asked", "year_found", "heads_asked", "heads_found",
)
PLAN_FIT = RANK_FEATURES[RANK_FEATURES.index("part_cov_min"):]


def plan_fit(plan, coverage):
    """Passage-level fit to the question plan, as a function of one passage: the least-covered part's coverage,
    and for what the parts ask (a kind of figure, a year, head nouns) whether the passage states it. What the plan
    asks is read once here; the returned fit(text, raw, date) takes the passage normalised lower-case (`text`),
    as indexed (`raw`) and its date. `coverage(part, text)` is the retriever's IDF-weighted coverage."""
    from .checks import year_stated
    from .textproc import unit_pattern

    parts = [p for p in plan.parts if p.terms] or ([plan.whole] if plan.whole is not None else [])
    units = [unit_pattern(p.unit) for p in plan.parts if p.unit and p.unit != "date"]
    units = [u for u in units if u is not None]
    years = [(y, False) for p in plan.parts for y in p.years] + [(y, True) for p in plan.parts for y in p.years_en]
    heads = list(dict.fromkeys(h for p in plan.parts for h in p.heads))

    def fit(text: str, raw: str, date: str) -> dict[str, float]:
        return {
            "part_cov_min": min((coverage(p, text) for p in parts), default=0.0),
            "unit_asked": 1.0 if units else 0.0,
            "unit_found": 1.0 if units and all(u.search(raw) for u in units) else 0.0,
            "year_asked": 1.0 if years else 0.0,
            "year_found": 1.0 if years and all(year_stated(y, raw, date, english=en) for y, en in years) else 0.0,
            "heads_asked": 1.0 if heads else 0.0,
            "heads_found": (sum(1 for h in heads if h in text) / len(heads)) if heads else 0.0,
        }

    return fit


def rank_features(bm25_rank: int | None, bm25_score: float, bm25_best: float, dense_rank: int | None, dense_sim: float,
                  dense_best: float, fused: float, fused_best: float, coverage: float, context_coverage: float,
                  length: int, preamble: bool, fit: dict[str, float] | None = None) -> dict[str, float]:
    return dict.fromkeys(PLAN_FIT, 0.0) | (fit or {}) | {
        "bm25_rr": 1.0 / bm25_rank if bm25_rank else 0.0,
        "dense_rr": 1.0 / dense_rank if dense_rank else 0.0,
        "bm25_rel": bm25_score / bm25_best if bm25_best > 0 else 0.0,
        "dense": dense_sim,
        "dense_gap": (dense_best - dense_sim) if dense_rank else 0.2,
        "fused_rel": fused / fused_best if fused_best > 0 else 0.0,
        "coverage": coverage,
        "context_coverage": context_coverage,
        "in_bm25": 1.0 if bm25_rank else 0.0,
        "in_dense": 1.0 if dense_rank else 0.0,
        "len_log": math.log1p(length),
        "preamble": 1.0 if preamble else 0.0,
    }


def load_ranker(path: str | Path | None = None) -> Decider:
    from .decide import load_decider

    try:
        return load_decider(path or DEFAULT_RANKER)
    except DeciderError as e:
        raise DeciderError(str(e).replace("answer decision model", "ranking model")) from e


def fit_ranker(rows: list[tuple[str, dict[str, float], int]], c: float = 1.0, negatives: int = 10) -> Decider:
    """Pairwise logistic regression (a linear RankSVM-like model): for every question, each passage holding the
    evidence against its `negatives` best-fused passages that do not, on feature differences. What is learned is
    the order within a question, which is what the final ranking is for; its probability() ranks passages."""
    by_q: dict[str, list[tuple[dict[str, float], int]]] = {}
    for q, f, lab in rows:
        by_q.setdefault(q, []).append((f, lab))
    names = list(RANK_FEATURES)
    x: list[dict[str, float]] = []
    y: list[int] = []
    for cands in by_q.values():
        pos = [f for f, lab in cands if lab]
        neg = sorted((f for f, lab in cands if not lab), key=lambda f: -f.get("fused_rel", 0.0))[:negatives]
        for p in pos:
            for n in neg:
                d = {k: p.get(k, 0.0) - n.get(k, 0.0) for k in names}
                x.append(d)
                y.append(1)
                x.append({k: -v for k, v in d.items()})
                y.append(0)
    if not x:
        raise DeciderError("no question with both a passage holding its evidence and one not: nothing to rank")
    return fit_linear(x, y, names, c)
