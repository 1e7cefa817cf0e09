"""Training and document-held-out validation of the learned answer decision (`rag train`, `rag eval --folds`).

Examples are the candidate sentences the answerer judges for each part of each gold question that goes the
fact route (not comparative, not a whole section, not a question about the reply itself); a candidate is
positive when the question is answerable and the sentence holds one of its must_include strings.

Folds hold out whole places: every question about one city's or province's replies is in the same fold, so
a fold's figures come from replies whose questions the model never saw. (The hand-written checks were
written over the bundled and first 20 replies, so on those replies even fold figures are tuning figures; a
fresh gold set over replies nobody worked on is the generalisation figure.)
"""
from __future__ import annotations

import hashlib
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .checks import run_checks
from .decide import FEATURES, Decider, Example, features, fit, question_outcomes
from .evaluate import GoldItem, QuestionResult, aggregate, load_gold_sets, score_question
from .pipeline import Pipeline
from .retriever import Retriever
from .textproc import normalise
from .types import Hit, QuestionPlan


@dataclass
class Prepared:
    """A gold question with its plan and retrieved passages, computed once for every model tried on it."""

    item: GoldItem
    group: str
    plan: QuestionPlan
    hits: list[Hit]
    latency_ms: float = 0.0


def _group(pipe: Pipeline, item: GoldItem) -> str:
    """The place a question is about (its first document's city); an unanswerable one is spread by its id."""
    docs = pipe.retriever.generation().docs
    if item.doc_ids:
        meta = docs.get(item.doc_ids[0])
        return (meta.city if meta and meta.city else item.doc_ids[0])
    return "unanswerable-" + str(int(hashlib.sha1(item.id.encode()).hexdigest(), 16) % UNANSWERABLE_BUCKETS)


def prepare(pipe: Pipeline, gold: list[GoldItem], k: int = 10, mode: str = "hybrid", rank_rows: list | None = None) -> list[Prepared]:
    """Plans and passages of gold questions; with `rank_rows`, also every fused candidate's ranking features
    and whether it holds the question's evidence (the learned ranking's training rows)."""
    out = []
    with pipe.retriever.pinned():
        gen = pipe.retriever.generation()
        text = {c.chunk_id: normalise(c.text) for c in gen.chunks} if rank_rows is not None else {}
        for item in gold:
            t = time.perf_counter()
            res = pipe.retriever.search(item.question, k=k, mode=mode, with_features=rank_rows is not None)
            p = Prepared(item, _group(pipe, item), res.query, res.hits, (time.perf_counter() - t) * 1000)
            out.append(p)
            if rank_rows is not None and item.answerable and item.evidence:
                ev = [normalise(e) for e in item.evidence]
                for cid, f in res.rank_features.items():
                    rank_rows.append((item.id, p.group, f, int(any(e in text[cid] for e in ev))))
    return out


def examples(pipe: Pipeline, prepared: list[Prepared]) -> list[Example]:
    """The candidates of every fact-route question part, with features and labels."""
    ans = pipe.extractive
    out: list[Example] = []
    with pipe.retriever.pinned():
        for p in prepared:
            plan, hits = p.plan, p.hits
            if not hits or plan.unknown_places or plan.kind == "comparative":
                continue
            ans._why = []
            if plan.kind == "meta" and ans._document_facts(plan, hits):
                continue
            if ans._section(plan, hits) is not None:
                continue
            must = [normalise(m) for m in p.item.must_include]
            for i, part in enumerate(plan.parts):
                cands = ans.candidates(plan, part, hits)
                if not cands:
                    continue
                best, best_cov = cands[0].score, max(c.coverage for c in cands)
                ctx = ans._context(plan)
                for c in cands:
                    findings = run_checks(part, c, ctx, ans.disabled)
                    if ans.vetoed(findings):  # refused before the decision sees it
                        continue
                    text = normalise(c.text)
                    label = int(p.item.answerable and any(m in text for m in must))
                    out.append(Example(p.item.id, p.group, i, features(part, c, best, findings, best_cov), label, p.item.answerable))
    return out


def answer_all(pipe: Pipeline, prepared: list[Prepared], decider: Decider | None, decision: str) -> list[QuestionResult]:
    """End-to-end answers of prepared questions with one decision (a model, or the rules)."""
    ans = pipe.extractive
    saved = (ans.decider, ans.cfg)
    ans.decider, ans.cfg = decider, replace(ans.cfg, decision=decision)
    rows = []
    try:
        with pipe.retriever.pinned():
            for p in prepared:
                t = time.perf_counter()
                a = ans.answer(p.plan, p.hits)
                rows.append(score_question(p.item, p.hits, a, p.latency_ms + (time.perf_counter() - t) * 1000))
    finally:
        ans.decider, ans.cfg = saved
    return rows


UNANSWERABLE_BUCKETS = 20  # unanswerable questions (no place of their own) are spread over this many groups


def fold_of(groups: list[str], n_folds: int) -> dict[str, int]:
    """Unanswerable questions' groups dealt round the folds (every fold has its share of them), then places
    spread by size (largest first, each to the fold with fewest questions so far)."""
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    load = [0] * n_folds
    out = {}
    for i, g in enumerate(sorted(g for g in sizes if g.startswith("unanswerable-"))):
        out[g] = i % n_folds
        load[i % n_folds] += sizes[g]
    for g in sorted((g for g in sizes if g not in out), key=lambda g: (-sizes[g], g)):
        f = min(range(n_folds), key=lambda i: (load[i], i))
        out[g] = f
        load[f] += sizes[g]
    return out


FOLD_METRICS = ("hit@1", "mrr", "must_include", "abstain_accuracy", "false_abstain", "citation_valid")


def _failures(results: dict[str, list[QuestionResult]]) -> list[dict]:
    """The questions some system of the fold got wrong, with what each system did (for reading weak folds)."""
    out = []
    by_id = {name: {r.id: r for r in rs} for name, rs in results.items()}
    for first in next(iter(results.values())):
        rows = {name: rs[first.id] for name, rs in by_id.items()}
        if any(r.failed and not all(f.startswith(("evidence rank", "doc_recall")) for f in r.failed) for r in rows.values()):
            out.append({"id": first.id, "question": first.question, "answerable": first.answerable,
                        **{name: {"failed": r.failed, "answer": r.answer[:300]} for name, r in rows.items()}})
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"mean": round(statistics.mean(values), 4), "min": round(min(values), 4), "max": round(max(values), 4),
            "sd": round(statistics.pstdev(values), 4)}


def run_folds(settings, gold_paths: list[str | Path], n_folds: int = 5, k: int = 10, c: float = 0.1, progress=None) -> dict:
    """Document-held-out folds: per fold, the ranking and the decision are fitted on the other folds' places and
    the held-out places' questions are answered end to end. In the same loop: the hand-set system (coverage
    ranking, every check must pass) and BM25-only retrieval with the fold's decision."""
    from .rank import fit_ranker

    base = settings.with_overrides(**{"answer.decision": "rules", "retrieval.ranking": "coverage"})
    pipe = Pipeline(base)
    gold = load_gold_sets(gold_paths)
    rows: list = []
    coverage = prepare(pipe, gold, k=k, rank_rows=rows)
    bm25 = prepare(pipe, gold, k=k, mode="bm25")
    folds = fold_of([p.group for p in coverage], n_folds)
    ex = examples(pipe, coverage)
    group_of = {p.item.id: p.group for p in coverage}
    learned = settings.with_overrides(**{"answer.decision": "learned", "retrieval.ranking": "learned"})
    learned_pipe = Pipeline(learned, retriever=Retriever(learned, embedder=pipe.retriever.embedder))
    table = []
    for f in range(n_folds):
        test_ids = {p.item.id for p in coverage if folds[p.group] == f}
        model = fit([e for e in ex if folds[group_of[e.qid]] != f], c=c, wrong_answer_cost=settings.answer.wrong_answer_cost)
        learned_pipe.retriever._ranker = fit_ranker([(q, feats, lab) for q, g, feats, lab in rows if folds[g] != f])
        test = [p.item for p in coverage if p.item.id in test_ids]
        sel_l = prepare(learned_pipe, test, k=k)
        sel_c = [p for p in coverage if p.item.id in test_ids]
        sel_b = [p for p in bm25 if p.item.id in test_ids]
        results = {
            "learned": answer_all(learned_pipe, sel_l, model, "learned"),
            "rules": answer_all(pipe, sel_c, None, "rules"),
            "bm25_learned": answer_all(pipe, sel_b, model, "learned"),
        }
        row = {
            "fold": f, "places": sorted(g for g, i in folds.items() if i == f and not g.startswith("unanswerable")),
            "questions": len(sel_c), "threshold": round(model.threshold, 3),
            **{name: aggregate(rs) for name, rs in results.items()},
            "failures": _failures(results),
        }
        table.append(row)
        if progress:
            progress()
    names = ("learned", "rules", "bm25_learned")
    summary = {name: {m: _spread([r[name][m] for r in table]) for m in FOLD_METRICS} for name in names}
    return {"folds": table, "summary": summary, "settings": {"gold": [str(p) for p in gold_paths], "n_folds": n_folds, "k": k, "C": c}}


def train(settings, gold_paths: list[str | Path], out: str | Path, k: int = 10, c: float = 0.1, n_folds: int = 5,
          ranker_out: str | Path | None = None) -> dict:
    """Fit the decision (and the ranking, to `ranker_out`) on every given gold set and write them; also report
    question-level held-out-place folds of the decision."""
    from .rank import fit_ranker

    pipe = Pipeline(settings.with_overrides(**{"answer.decision": "rules", "retrieval.ranking": "coverage"}))
    gold = load_gold_sets(gold_paths)
    rows: list = []
    prepared = prepare(pipe, gold, k=k, rank_rows=rows)
    if ranker_out:
        ranker = fit_ranker([(q, f, lab) for q, _, f, lab in rows])
        ranker.info = {"trained_on": [str(p) for p in gold_paths], "rows": len(rows), "positives": sum(r[3] for r in rows)}
        ranker.save(ranker_out)
    ex = examples(pipe, prepared)
    group_of = {p.item.id: p.group for p in prepared}
    folds = fold_of(list(group_of.values()), n_folds)
    cv = []
    for f in range(n_folds):
        train_ex = [e for e in ex if folds[group_of[e.qid]] != f]
        test_ex = [e for e in ex if folds[group_of[e.qid]] == f]
        if not train_ex or not test_ex:
            continue
        m = fit(train_ex, c=c, wrong_answer_cost=settings.answer.wrong_answer_cost)
        outcomes = question_outcomes(m, test_ex, m.min_coverage)
        ans_ = [(p, lab) for a, p, lab in outcomes if a]
        una = [p for a, p, _ in outcomes if not a]
        cv.append({
            "fold": f,
            "right_answer": round(sum(1 for p, lab in ans_ if p >= m.threshold and lab) / max(1, len(ans_)), 4),
            "false_refusal": round(sum(1 for p, _ in ans_ if p < m.threshold) / max(1, len(ans_)), 4),
            "refused_unanswerable": round(sum(1 for p in una if p < m.threshold) / max(1, len(una)), 4),
        })
    model = fit(ex, c=c, wrong_answer_cost=settings.answer.wrong_answer_cost)
    model.info = {
        "trained_on": [str(p) for p in gold_paths], "questions": len(gold), "examples": len(ex), "positives": sum(e.label for e in ex),
        "C": c, "features": len(FEATURES), "cv_held_out_places": cv,
    }
    model.save(out)
    return model.info
