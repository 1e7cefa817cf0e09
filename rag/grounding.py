"""The passages an LLM is given: the ones the question plan selected, trimmed to what answers.

A small model copes with a few short passages, not ten whole chunks. `select(plan, hits, extractive)`:

* the passages the extractive answerer quoted (it picked a sentence per part of the plan, a city per line of
  a comparative answer, the items of a section), each trimmed to the quoted sentences and their neighbours
  within `chars` characters;
* then `extra` more (a fact question), or up to `limit` when the extractive answerer refused, the best remaining
  retrieved passages, each trimmed to its sentences
  that say most of the plan's key terms (when the extractive answerer refused, these are all the model gets);
* a comparative question keeps one passage per document, up to `limit_comparative`.

`quotes(hits, extractive)` is what an English question's translation is made from ([llm] english = "translate"):
each passage the extractive answer cited, reduced to the sentences it quoted, nothing else.

`Selected.texts[i]` is what the model reads of `Selected.hits[i]`; a citation of it can be checked against the
whole passage (rag.llm.support_text).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .types import Answer, Chunk, Hit, QuestionPlan
from .verify import norm, split_sentences

_ENDS = "。；！？!?;"


@dataclass
class Selected:
    hits: list[Hit] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    from_answer: int = 0  # how many come from the extractive answer's citations


def _sentences(text: str) -> list[str]:
    out = []
    for para in text.split("\n"):
        out += [s for s in split_sentences(para, _ENDS) if s.strip()]
        if out:
            out[-1] = out[-1].rstrip() + "\n"
    return out


def trim(text: str, keep: list[int], chars: int) -> str:
    """The sentences `keep` (indices into the passage's sentences) and their neighbours, within `chars`
    characters, in passage order; a cut is marked …"""
    sents = _sentences(text)
    if len(text) <= chars or not sents:
        return text.strip()
    chosen = sorted(set(i for i in keep if 0 <= i < len(sents))) or [0]
    size = sum(len(sents[i]) for i in chosen)
    lo, hi = chosen[0], chosen[-1]
    while True:  # grow around the chosen sentences, the one after first (it says what the item goes on to say)
        grown = False
        for j in (hi + 1, lo - 1):
            if 0 <= j < len(sents) and size + len(sents[j]) <= chars:
                chosen.append(j)
                size += len(sents[j])
                lo, hi = min(lo, j), max(hi, j)
                grown = True
        if not grown:
            break
    chosen = sorted(set(chosen))
    out = ""
    for a, b in zip([None, *chosen], chosen):
        if a is not None and b != a + 1:
            out += "…"
        out += sents[b]
    if chosen[0] > 0:
        out = "…" + out
    if chosen[-1] < len(sents) - 1:
        out = out.rstrip() + "…"
    return out.strip()


def _score(plan: QuestionPlan, sentence: str) -> float:
    s = norm(sentence).lower()
    terms = plan.terms or (plan.whole.terms if plan.whole else [])
    score = 0.0
    for t in terms:
        if any(norm(a).lower() in s for a in plan.equivalents(t)):
            score += 1.0 + 0.1 * len(t)
    if re.search(r"\d", s):
        score += 0.3 * any(p.asks_number for p in plan.parts)
    return score


def _best(plan: QuestionPlan, text: str, n: int = 2) -> list[int]:
    sents = _sentences(text)
    ranked = sorted(range(len(sents)), key=lambda i: (-_score(plan, sents[i]), i))
    return [i for i in ranked[:n] if _score(plan, sents[i]) > 0] or [0]


def _quoted(text: str, quote: str) -> list[int]:
    sents = _sentences(text)
    qs = [norm(q) for q in (quote or "").split("\n") if q.strip()]
    out = []
    for i, s in enumerate(sents):
        ns = norm(s)
        if any(q and (q in ns or (len(ns) >= 6 and ns.rstrip("。；") in q)) for q in qs):
            out.append(i)
    return out


def _chunk_of(c) -> Chunk:
    return Chunk(chunk_id=c.chunk_id, doc_id=c.doc_id, ordinal=0, text=c.text, section_path=[x for x in c.section.split(" › ") if x],
                 city=c.city, title=c.title, issuer=c.issuer, date=c.date)


def quotes(hits: list[Hit], extractive: Answer) -> Selected:
    """The extractive answer's citations, each as its passage and the sentences it quoted (in that order)."""
    out = Selected()
    by_id = {h.chunk.chunk_id: h for h in hits}
    for c in extractive.citations:
        text = (c.quote or "").strip()
        if extractive.abstained or not text:
            continue
        out.hits.append(by_id.get(c.chunk_id) or Hit(chunk=_chunk_of(c), score=c.score, rank=len(hits) + 1))
        out.texts.append(text)
    out.from_answer = len(out.hits)
    return out


def select(plan: QuestionPlan, hits: list[Hit], extractive: Answer | None = None, limit: int = 4, chars: int = 320,
           limit_comparative: int = 8, extra: int = 1) -> Selected:
    out = Selected()
    by_id = {h.chunk.chunk_id: h for h in hits}
    comparative = plan.kind == "comparative"
    section = plan.kind == "section"
    cap = limit_comparative if comparative else max(limit, 6) if section else limit
    docs: set[str] = set()
    if extractive is not None and not extractive.abstained:
        for c in extractive.citations[:cap]:
            h = by_id.get(c.chunk_id) or Hit(chunk=_chunk_of(c), score=c.score, rank=len(hits) + 1)
            keep = _quoted(h.chunk.text, c.quote) or _best(plan, h.chunk.text)
            out.hits.append(h)
            out.texts.append(trim(h.chunk.text, keep, chars))
            docs.add(h.chunk.doc_id)
        out.from_answer = len(out.hits)
    room = cap - len(out.hits)
    if out.hits:  # the answer's sentences / cities / items are the selection, with `extra` more for a fact question
        room = 0 if comparative or section else min(room, extra)
    for h in hits:
        if room <= 0:
            break
        if any(h.chunk.chunk_id == x.chunk.chunk_id for x in out.hits):
            continue
        if comparative and h.chunk.doc_id in docs:
            continue
        out.hits.append(h)
        out.texts.append(trim(h.chunk.text, _best(plan, h.chunk.text), chars))
        docs.add(h.chunk.doc_id)
        room -= 1
    return out


__all__ = ["select", "quotes", "trim", "Selected"]
