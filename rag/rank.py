"""The learned final ranking of retrieved passages (`[retrieval] ranking = "learned"`).

Each candidate passage of the fused dense + BM25 lists gets features (its BM25 and dense ranks and scores
relative to the question's best, its fused score, the question's key-term coverage of its text and of its
context: city, title and section headings), and a logistic regression gives the probability that it holds the
answer. Trained by `rag train` on the gold sets' evidence, validated with places held out, shipped as
`rag/data/ranker.json` (the same JSON linear model as the answer decision, rag.decide).
"""
from __future__ import annotations

import math
from pathlib import Path

from .decide import Decider, DeciderError, fit_linear

DEFAULT_RANKER = Path(__file__).parent / "data" / "ranker.json"

RANK_FEATURES = (
    "bm25_rr", "dense_rr", "bm25_rel", "dense", "dense_gap", "fused_rel", "coverage", "context_coverage",
    "in_bm25", "in_dense", "len_log", "preamble",
)


def rank_features(bm25_rank: int | None, bm25_score: float, bm25_best: float, dense_rank: int | None, dense_sim: float,
                  dense_best: float, fused: float, fused_best: float, coverage: float, context_coverage: float,
                  length: int, preamble: bool) -> dict[str, float]:
    return {
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


def fit_ranker(rows: list[tuple[str, dict[str, float], int]], c: float = 1.0) -> Decider:
    """Pointwise logistic regression over (question id, features, holds evidence) rows."""
    return fit_linear([f for _, f, _ in rows], [lab for _, _, lab in rows], list(RANK_FEATURES), c)
