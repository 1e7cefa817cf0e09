"""The learned decision: which sentence answers a question part, and whether to answer at all.

A logistic regression over each candidate sentence's features (its checks' findings, its lexical coverage,
the passage's BM25, dense and fused ranks, the heuristic sentence score) gives the probability that the
sentence holds the answer. The best candidate is quoted when its probability reaches the model's threshold,
otherwise the answerer refuses. The model is a small JSON file (`rag/data/decider.json`: feature names,
standardisation, coefficients, threshold, how it was trained and validated), read with numpy only;
`rag train` fits it with scikit-learn on the gold sets and validates it with documents held out.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import CHECKS, Candidate, matched_terms
from .types import Finding, PlanPart

DEFAULT_MODEL = Path(__file__).parent / "data" / "decider.json"

BASE_FEATURES = (
    "coverage", "score", "score_rel", "is_best", "bm25_rr", "dense_rr",
    "has_number", "near", "unit_fit", "month_fit", "len_log", "asks_number", "unit_asked", "n_terms_log",
    "best_coverage", "coverage_gap", "matched_terms", "matched_share", "missing", "passage_missing",
)
FEATURES = BASE_FEATURES + tuple(f"fail:{name}" for name in CHECKS)


def features(part: PlanPart, c: Candidate, best_score: float, findings: list[Finding], best_coverage: float = 0.0) -> dict[str, float]:
    """The decision's inputs for one candidate (a check turned off counts as passed); best_score and
    best_coverage are the part's best candidate's."""
    src = c.hit.sources or {}
    f = {
        "coverage": c.coverage,
        "score": c.score,
        "score_rel": c.score / best_score if best_score > 0 else 0.0,
        "is_best": 1.0 if c.score >= best_score else 0.0,
        "bm25_rr": 1.0 / src["bm25"] if src.get("bm25") else 0.0,
        "dense_rr": 1.0 / src["dense"] if src.get("dense") else 0.0,
        "has_number": float(c.has_number),
        "near": float(c.near),
        "unit_fit": float(c.unit_fit),
        "month_fit": float(c.month_fit),
        "len_log": math.log1p(len(c.text)),
        "asks_number": float(part.asks_number),
        "unit_asked": float(bool(part.unit)),
        "n_terms_log": math.log1p(len(set(part.terms))),
        "best_coverage": best_coverage,
        "coverage_gap": best_coverage - c.coverage,
        "missing": c.missing,
        "passage_missing": c.passage_missing,
    }
    terms = set(part.terms)
    matched = matched_terms(part, c.text)
    f["matched_terms"] = float(matched)
    f["matched_share"] = matched / len(terms) if terms else 0.0
    for fd in findings:
        f[f"fail:{fd.check}"] = 0.0 if fd.ok else 1.0
    return f


@dataclass
class Decider:
    names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    min_coverage: float = 0.0  # a candidate sharing less of the key terms is refused before the model (learned)
    info: dict = field(default_factory=dict)

    def accepts(self, feats: dict[str, float]) -> tuple[bool, float]:
        """(accepted, probability): the coverage floor, then the probability against the threshold."""
        p = self.probability(feats)
        return feats.get("coverage", 0.0) >= self.min_coverage and p >= self.threshold, p

    def score(self, feats: dict[str, float]) -> float:
        """The linear score (log-odds): what a ranking sorts by, since probabilities saturate at 1.0 and tie."""
        x = np.array([feats.get(n, 0.0) for n in self.names], dtype=np.float64)
        return float(((x - self.mean) / self.scale) @ self.coef + self.intercept)

    def probability(self, feats: dict[str, float]) -> float:
        z = self.score(feats)
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def to_dict(self) -> dict:
        return {
            "kind": "logistic_regression", "features": self.names, "mean": self.mean.round(6).tolist(),
            "scale": self.scale.round(6).tolist(), "coef": self.coef.round(6).tolist(), "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 4), "min_coverage": round(self.min_coverage, 4), "info": self.info,
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def from_dict(cls, d: dict) -> "Decider":
        n = len(d["features"])
        arrays = [np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (n,) for a in arrays) or d.get("kind") != "logistic_regression":
            raise ValueError("not a decider model (kind, features, mean, scale, coef of one length)")
        return cls(list(d["features"]), arrays[0], np.where(arrays[1] > 0, arrays[1], 1.0), arrays[2], float(d["intercept"]), float(d["threshold"]), float(d.get("min_coverage", 0.0)), d.get("info", {}))


class DeciderError(ValueError):
    pass


def load_decider(path: str | Path | None = None) -> Decider:
    p = Path(path) if path else DEFAULT_MODEL
    try:
        return Decider.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DeciderError(f"cannot read the answer decision model {p}: {e} (retrain it with `rag train`)") from e


# ------------------------------------------------------------------ training (scikit-learn, `rag train`)
@dataclass
class Example:
    """One candidate sentence of one question part, with its label (does it hold the gold answer?)."""

    qid: str
    group: str  # the document the question is about (folds hold documents out)
    part: int
    feats: dict[str, float]
    label: int
    answerable: bool


def fit(examples: list[Example], c: float = 1.0, names: list[str] | None = None, inner_folds: int = 5, wrong_answer_cost: float = 1.0) -> Decider:
    """Logistic regression on the candidates, then the threshold that decides best per question — chosen on
    probabilities each question got from a model fitted without its place (`inner_folds` folds by group), not
    on the training fit's own, which are surer than the model will be on a new reply."""
    names = list(names or FEATURES)
    dec = fit_linear([e.feats for e in examples], [e.label for e in examples], names, c)
    held = held_out_probabilities(examples, c, names, inner_folds)
    dec.threshold, dec.min_coverage = best_threshold(dec, examples, held, wrong_answer_cost)
    return dec


def held_out_probabilities(examples: list[Example], c: float, names: list[str], n_folds: int) -> list[float] | None:
    """Each example's probability from a model fitted on the other places' examples (places spread over
    `n_folds` folds), or None when there are too few places or labels to hold any out."""
    groups = sorted({e.group for e in examples})
    if n_folds < 2 or len(groups) < n_folds:
        return None
    fold = {g: i % n_folds for i, g in enumerate(sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest()))}
    out = [0.0] * len(examples)
    for k in range(n_folds):
        train = [e for e in examples if fold[e.group] != k]
        if len({e.label for e in train}) < 2:
            return None
        m = fit_linear([e.feats for e in train], [e.label for e in train], names, c)
        for i, e in enumerate(examples):
            if fold[e.group] == k:
                out[i] = m.probability(e.feats)
    return out


def fit_linear(rows: list[dict[str, float]], labels: list[int], names: list[str], c: float) -> Decider:
    """A standardised, class-balanced logistic regression over named features (threshold 0.5)."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([[f.get(n, 0.0) for n in names] for f in rows], dtype=np.float64)
    y = np.array(labels)
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    model.fit((X - mean) / scale, y)
    return Decider(list(names), mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]), 0.5)


def question_outcomes(dec: Decider, examples: list[Example], min_coverage: float = 0.0,
                      probs: list[float] | None = None) -> list[tuple[bool, float, int]]:
    """Per question part: (answerable, best probability, label of the best candidate) among the candidates at
    or above the coverage floor (probability 0 when none is); `probs` are the examples' probabilities when given
    (held out), else the model's."""
    best: dict[tuple[str, int], tuple[float, int, bool]] = {}
    for i, e in enumerate(examples):
        key = (e.qid, e.part)
        prob = probs[i] if probs is not None else dec.probability(e.feats)
        p = prob if e.feats.get("coverage", 0.0) >= min_coverage else 0.0
        if key not in best or p > best[key][0]:
            best[key] = (p, e.label if p > 0 else 0, e.answerable)
    return [(a, p, lab) for p, lab, a in best.values()]


def best_threshold(dec: Decider, examples: list[Example], probs: list[float] | None = None, wrong_answer_cost: float = 1.0) -> tuple[float, float]:
    """The (threshold, coverage floor) with the least cost over the question parts: a wrong refusal of an
    answerable part costs 1, an answer to an unanswerable part `wrong_answer_cost` (a confident wrong answer with
    a citation is worse than a refusal), a wrong sentence quoted for an answerable part 1. Of the thresholds that
    tie at the best floor, the middle one (a plateau's edge is where a new reply falls off)."""
    best_f, best_v, ties = 0.0, -math.inf, [0.5]
    for floor in np.linspace(0.0, 0.3, 13):
        out = question_outcomes(dec, examples, float(floor), probs)
        for t in np.linspace(0.05, 0.95, 91):
            v = -sum(wrong_answer_cost if not a else 1.0 for a, p, lab in out if (a and not (p >= t and lab)) or (not a and p >= t))
            if v > best_v:
                best_f, best_v, ties = float(floor), v, [float(t)]
            elif v == best_v and float(floor) == best_f:
                ties.append(float(t))
    return ties[len(ties) // 2], best_f
