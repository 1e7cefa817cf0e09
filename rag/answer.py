"""Stage 6a: the extractive answerer (no LLM, works offline).

It quotes the sentences of the retrieved passages that answer the question, word for word, each followed
by its citation marker [n]; comparative questions get one line per city/document. When no passage
supports an answer it abstains (资料中未找到…) instead of quoting loosely related text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .parser import split_sentences
from .retriever import Query
from .textproc import normalise
from .types import Answer, Citation, Hit

_ASKS_NUMBER = re.compile(
    r"多少|几[个家户项次场条名人年月天倍批]|几成|金额|数额|额度|比例|比重|占比|规模|数量|总额|余额|增长率|增速|多大|多高|多长|哪一年|何时|什么时候|时间|日期|"
    r"\bhow (much|many|long|high|large)\b|\bwhat (amount|percentage|share|number|proportion)\b|\bwhen\b|\bwhich year\b",
    re.I,
)
_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万亿]+(?:个|家|户|项|次|场|条|名|人|年|倍|批|亿|万)")
NOT_FOUND = "资料中未找到能回答该问题的内容。"


def asks_number(question: str) -> bool:
    return bool(_ASKS_NUMBER.search(question))


@dataclass
class _Sent:
    text: str
    hit: Hit
    score: float
    coverage: float
    has_number: bool
    order: int


def _clauses_window(sentence: str, q: Query, cover: Callable[[Query, str], float], limit: int = 160) -> str:
    """A long sentence is cut to its best run of whole clauses (exact wording, never rephrased)."""
    if len(sentence) <= limit:
        return sentence
    parts = [m.group(0) for m in re.finditer(r"[^，,；;：:]*[，,；;：:]?", sentence) if m.group(0)]
    best, best_score = sentence[:limit], -1.0
    for i in range(len(parts)):
        text = ""
        for j in range(i, len(parts)):
            if len(text) + len(parts[j]) > limit and text:
                break
            text += parts[j]
            s = cover(q, text) + (0.05 if _NUMBER.search(text) else 0) - 0.0005 * len(text)
            if s > best_score:
                best, best_score = text, s
    return best.rstrip("，,；;：:")


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, coverage: Callable[[Query, str], float], min_coverage: float = 0.34, min_dense: float = 0.80):
        self.coverage = coverage
        self.min_coverage = min_coverage
        self.min_dense = min_dense

    # -------------------------------------------------------------- public
    def answer(self, q: Query, hits: list[Hit]) -> Answer:
        if q.unknown_places:
            places = "、".join(q.unknown_places)
            return Answer(q.text, f"资料中未找到关于{places}的答复,无法回答该问题。", True, [])
        if not hits:
            return Answer(q.text, NOT_FOUND, True, [])
        if q.comparative:
            return self._comparative(q, hits)
        return self._single(q, hits)

    # -------------------------------------------------------------- internals
    def _sentences(self, q: Query, hits: list[Hit]) -> list[_Sent]:
        need_num = asks_number(q.text)
        out: list[_Sent] = []
        order = 0
        for hit in hits:
            prior = 1.0 / hit.rank
            for para in hit.chunk.text.split("\n"):
                for s in split_sentences(para):
                    s = s.strip()
                    if len(normalise(s)) < 4:
                        continue
                    s = _clauses_window(s, q, self.coverage)
                    cov = self.coverage(q, s)
                    has_num = bool(_NUMBER.search(s))
                    score = cov + 0.12 * prior + (0.08 if need_num and has_num else 0.0)
                    out.append(_Sent(s, hit, score, cov, has_num, order))
                    order += 1
        return out

    def _supported(self, q: Query, best: _Sent) -> bool:
        if not q.terms:  # nothing to match lexically (e.g. an English question outside the glossary): trust dense
            return best.hit.dense >= self.min_dense
        if best.coverage >= self.min_coverage:
            return True
        return best.hit.dense >= self.min_dense + 0.03 and best.hit.coverage >= self.min_coverage * 0.75

    def _single(self, q: Query, hits: list[Hit]) -> Answer:
        sents = self._sentences(q, hits[:3])
        if not sents:
            return Answer(q.text, NOT_FOUND, True, [])
        need_num = asks_number(q.text)
        ranked = sorted(sents, key=lambda s: (-s.score, s.order))
        best = ranked[0]
        if need_num and not best.has_number:
            with_num = [s for s in ranked if s.has_number]
            if with_num and with_num[0].score >= best.score * 0.75:
                best = with_num[0]
        if not self._supported(q, best) or (need_num and not best.has_number and not any(s.has_number and s.coverage >= self.min_coverage for s in ranked)):
            return Answer(q.text, NOT_FOUND, True, [])
        chosen = [best]
        for s in ranked[1:]:
            if len(chosen) >= 3:
                break
            if s.score >= best.score * 0.8 and s.coverage >= self.min_coverage and s.text not in {c.text for c in chosen}:
                chosen.append(s)
        chosen.sort(key=lambda s: s.order)
        return self._compose(q, [(None, chosen)])

    def _comparative(self, q: Query, hits: list[Hit]) -> Answer:
        by_doc: dict[str, list[Hit]] = {}
        for h in hits:
            by_doc.setdefault(h.chunk.doc_id, []).append(h)
        groups: list[tuple[str | None, list[_Sent]]] = []
        for doc_id, doc_hits in by_doc.items():
            sents = self._sentences(q, doc_hits)
            if not sents:
                continue
            ranked = sorted(sents, key=lambda s: (-s.score, s.order))
            best = ranked[0]
            if best.coverage < self.min_coverage and not (not q.terms and best.hit.dense >= self.min_dense):
                continue
            chosen = [best] + [s for s in ranked[1:2] if s.score >= best.score * 0.85 and s.coverage >= self.min_coverage]
            chosen.sort(key=lambda s: s.order)
            label = doc_hits[0].chunk.city or doc_id
            groups.append((label, chosen))
        if not groups:
            return Answer(q.text, NOT_FOUND, True, [])
        # two documents from the same city: name them apart
        labels = [g[0] for g in groups]
        if len(set(labels)) < len(labels):
            groups = [(f"{lab}({g[1][0].hit.chunk.doc_id})" if labels.count(lab) > 1 else lab, g[1]) for lab, g in zip(labels, groups)]
        return self._compose(q, groups)

    def _compose(self, q: Query, groups: list[tuple[str | None, list[_Sent]]]) -> Answer:
        cites: dict[str, Citation] = {}
        lines: list[str] = []
        for label, sents in groups:
            parts = []
            for s in sents:
                c = s.hit.chunk
                if c.chunk_id not in cites:
                    cites[c.chunk_id] = Citation(
                        n=len(cites) + 1,
                        doc_id=c.doc_id,
                        city=c.city,
                        title=c.title,
                        section=c.section,
                        text=c.text,
                        score=round(s.hit.score, 4),
                        issuer=c.issuer,
                        date=c.date,
                        quote=s.text,
                        chunk_id=c.chunk_id,
                    )
                else:
                    cit = cites[c.chunk_id]
                    if s.text not in cit.quote:
                        cit.quote = f"{cit.quote}\n{s.text}"
                parts.append(f"{s.text}[{cites[c.chunk_id].n}]")
            body = "".join(parts)
            lines.append(f"{label}:{body}" if label else body)
        return Answer(q.text, "\n".join(lines), False, list(cites.values()))
