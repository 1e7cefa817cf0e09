"""Follow-up questions rewritten with the previous question: '那沈阳呢?' after '营口市对博士每月补贴多少?'
is asked as '沈阳市对博士每月补贴多少?'. Pure: text in, text out (the chat and the API use it)."""
from __future__ import annotations

import re

from .places import find_places

_FOLLOWUP_START = re.compile(r"^\s*(那么|那|还有|另外|再问|and\b|what about\b|how about\b|and what about\b)", re.I)
_FILLER = re.compile(
    r"(那么|那|呢|吗|么|的情况|情况|怎么样|如何|怎样|还有|另外|又|也|是|有|what about|how about|and|the|city of|[\s?？!！。.,，、;；:：])",
    re.I,
)


def _places(text: str) -> list[tuple[str, int, int]]:
    """Places written in text; English names through the glossary (Shenyang -> 沈阳市)."""
    found = find_places(text)
    if not found and re.search(r"[A-Za-z]{3,}", text):
        from .textproc import expand_english

        extra = expand_english(text)
        if extra:
            found = [(full, -1, -1) for full, _, _ in find_places(extra)]
    return found


def rewrite_followup(question: str, previous: list[str]) -> str:
    """Rewrite a short follow-up with the previous question ('那沈阳呢?' after '营口市对博士每月补贴多少?'
    -> '沈阳市对博士每月补贴多少?'). Returns the question unchanged when it stands on its own."""
    q = (question or "").strip()
    prev = next((p for p in reversed(previous or []) if p and p.strip()), "")
    if not q or not prev:
        return q
    places = _places(q)
    rest = q
    for full, s, e in sorted((p for p in places if p[1] >= 0), key=lambda p: -p[1]):
        rest = rest[:s] + rest[e:]
    rest_en = rest
    for full, _, _ in places:  # English place names
        rest_en = re.sub(re.escape(full[:2]), "", rest_en)
    leftover = _FILLER.sub("", rest_en)
    if places and any(p[1] < 0 for p in places):  # English names: drop the matching words
        leftover = re.sub(r"[A-Za-z]+", lambda m: "" if _places(m.group(0)) else m.group(0), leftover)
    starts = bool(_FOLLOWUP_START.match(q))
    short = len(leftover) <= 2
    if not (starts or short):
        return q
    if not places:
        # '那硕士呢?': no place, no topic of its own -> the previous question plus the new words
        if starts and len(leftover) <= 8:
            return f"{prev.rstrip('?？')} {q}".strip()
        return q
    if not short:
        return q  # a full new question that happens to start with 那
    new_names = list(dict.fromkeys(full for full, _, _ in places))
    old = _places(prev)
    old = [p for p in old if p[1] >= 0]
    if old:
        out, pos, used = [], 0, False
        for full, s, e in sorted(old, key=lambda p: p[1]):
            if s < pos:
                continue
            out.append(prev[pos:s])
            if not used:
                out.append("、".join(new_names))
                used = True
            pos = e
        out.append(prev[pos:])
        return re.sub(r"、{2,}", "、", "".join(out))
    # the previous question named no place ('哪些城市…'): ask it about the new place(s)
    lead = "、".join(new_names)
    if re.match(r"^(哪些|哪个|哪几个)(城市|地方|地区|省份?|市)", prev):
        return re.sub(r"^(哪些|哪个|哪几个)(城市|地方|地区|省份?|市)(是否)?", lead + "是否", prev, count=1)
    return f"{lead}{prev}" if re.search(r"[\u4e00-\u9fff]", prev) else f"{prev} ({lead})"


__all__ = ["rewrite_followup"]
