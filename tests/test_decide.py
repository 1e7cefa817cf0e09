"""rag.decide and rag.rank: the JSON linear models (no pickle), their features, fitting and thresholds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rag.checks import Candidate
from rag.decide import FEATURES, Decider, DeciderError, Example, best_threshold, features, fit, load_decider
from rag.rank import RANK_FEATURES, load_ranker, rank_features
from rag.types import Chunk, Finding, Hit, PlanPart


def _cand(text="每月补贴2000元。", coverage=0.8, score=1.0):
    hit = Hit(chunk=Chunk("d#0", "d", 0, text, ["一、"]), score=1.0, rank=1, sources={"bm25": 1, "dense": 2})
    return Candidate(text, hit, score, coverage, True, 0)


def test_features_cover_every_name_and_checks_fail_as_one():
    part = PlanPart(text="补贴多少?", terms=["补贴"], asks_number=True, unit="money")
    f = features(part, _cand(), 1.0, [Finding("unit", False, "x"), Finding("head", True)], 0.8)
    assert set(f) <= set(FEATURES)
    assert f["fail:unit"] == 1.0 and f["fail:head"] == 0.0
    assert f["bm25_rr"] == 1.0 and f["dense_rr"] == 0.5 and f["matched_terms"] == 1.0


def test_bundled_models_load_and_are_json():
    for model, names in ((load_decider(), FEATURES), (load_ranker(), RANK_FEATURES)):
        assert tuple(model.names) == tuple(names)
        again = Decider.from_dict(json.loads(json.dumps(model.to_dict())))
        x = {n: 0.5 for n in names}
        assert again.probability(x) == pytest.approx(model.probability(x))
        assert 0.0 < model.probability(x) < 1.0


def test_a_bad_model_file_is_a_clear_error(tmp_path):
    p = tmp_path / "m.json"
    p.write_text('{"kind": "logistic_regression", "features": ["a"], "mean": [0, 1], "scale": [1], "coef": [1], "intercept": 0, "threshold": 0.5}')
    with pytest.raises(DeciderError, match="rag train"):
        load_decider(p)
    with pytest.raises(DeciderError):
        load_decider(tmp_path / "missing.json")


def _synthetic(seed, n, unanswerable_every, places, good, bad, names):
    """Questions of three candidates each, the first holding the answer when the question is answerable; its
    coverage drawn from `good`, the others' from `bad`; questions spread over `places`."""
    rng = np.random.default_rng(seed)
    ex = []
    for i in range(n):
        answerable = i % unanswerable_every != 0
        for j in range(3):
            right = answerable and j == 0
            cov = float(rng.uniform(*(good if right else bad)))
            ex.append(Example(f"q{i}", f"place{i % places}", 0, dict.fromkeys(names, cov), int(right), answerable))
    return ex


def test_fit_learns_a_separable_signal_and_a_threshold():
    ex = _synthetic(seed=0, n=200, unanswerable_every=4, places=5, good=(0.6, 1.0), bad=(0.0, 0.4), names=("coverage", "score"))
    m = fit(ex, c=1.0, names=["coverage", "score"])
    assert m.probability({"coverage": 0.9, "score": 0.9}) > 0.8 > m.probability({"coverage": 0.1, "score": 0.1})
    t, floor = best_threshold(m, ex)
    assert 0.05 <= t <= 0.95 and 0.0 <= floor <= 0.3
    ok, p = m.accepts({"coverage": 0.95, "score": 0.95})
    assert ok and p > m.threshold


def test_rank_features_without_dense_are_bounded():
    f = rank_features(1, 10.0, 10.0, None, 0.0, 0.9, 0.03, 0.03, 0.5, 0.7, 120, False)
    assert set(f) == set(RANK_FEATURES)
    assert f["in_dense"] == 0.0 and f["dense_rr"] == 0.0 and f["bm25_rel"] == 1.0


def test_pairwise_ranker_orders_within_a_question():
    from rag.rank import fit_ranker

    rows = []
    for i in range(30):  # the evidence passage has the higher coverage, whatever the question's overall level
        base = i / 30
        rows.append((f"q{i}", {"coverage": base + 0.3, "bm25_rr": 0.5}, 1))
        rows.append((f"q{i}", {"coverage": base, "bm25_rr": 1.0}, 0))
    m = fit_ranker(rows)
    assert m.coef[m.names.index("coverage")] > 0
    assert m.score({"coverage": 0.9, "bm25_rr": 0.5}) > m.score({"coverage": 0.6, "bm25_rr": 1.0})


def test_threshold_is_chosen_on_probabilities_held_out_by_place():
    """Every example's probability for choosing the threshold comes from a model that never saw its place; with
    too few places there is nothing to hold out and the training fit's own probabilities are used."""
    from rag.decide import held_out_probabilities

    ex = _synthetic(seed=1, n=120, unanswerable_every=3, places=6, good=(0.5, 1.0), bad=(0.0, 0.6), names=("coverage",))
    held = held_out_probabilities(ex, 1.0, ["coverage"], 3)
    assert held is not None and len(held) == len(ex) and all(0.0 < p < 1.0 for p in held)
    own = fit(ex, c=1.0, names=["coverage"], inner_folds=0)
    assert held != [own.probability(e.feats) for e in ex]  # not the training fit's
    assert held_out_probabilities(ex[:9], 1.0, ["coverage"], 5) is None  # one place: nothing to hold out
    m = fit(ex, c=1.0, names=["coverage"], inner_folds=3)
    assert m.threshold == best_threshold(m, ex, held)[0]


def test_a_tied_threshold_is_the_middle_of_the_plateau():
    # two parts: an answerable one at 0.8 and an unanswerable one at 0.2 — every threshold in (0.2, 0.8] is right
    ex = [Example("a", "g", 0, {"coverage": 1.0}, 1, True), Example("u", "g", 0, {"coverage": 1.0}, 0, False)]
    probs = [0.8, 0.2]
    t, _ = best_threshold(None, ex, probs)
    assert 0.45 <= t <= 0.55


def test_every_fold_gets_its_share_of_unanswerable_questions():
    from rag.learn import UNANSWERABLE_BUCKETS, fold_of

    groups = [f"unanswerable-{i % UNANSWERABLE_BUCKETS}" for i in range(150)] + ["沈阳市"] * 90 + ["营口市"] * 60 + ["天津市"] * 40
    folds = fold_of(groups, 5)
    per_fold = [sum(1 for g in groups if g.startswith("unanswerable-") and folds[g] == f) for f in range(5)]
    assert min(per_fold) >= 150 // 5 - 8, per_fold  # none left without any (a fold's abstain_accuracy would be 0)
    assert len({folds[g] for g in ("沈阳市", "营口市", "天津市")}) == 3  # places still spread by size
