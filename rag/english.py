"""The English lead line of an extractive answer to an English question.

The extractive answerer quotes Chinese sentences. For a question asked in English it puts one English line
before the quotes: the places whose replies are cited and every figure the quotes state, each in English with
the Chinese original beside it and the quote's own citation markers, e.g.

    From the reply of Yingkou (营口市): CNY 2,000 per month (每月2000元) [1]; 306 firms (306家) [2].

The line is derived only from the composed answer and its citations (nothing is looked up again), so every
figure in it is one the quoted, cited sentence states. Unit and qualifier words come from `rag/data/english.tsv`.
"""
from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from .places import gazetteer
from .types import Citation
from .verify import NumberMention, find_numbers, markers_in, strip_markers

_TABLE = Path(__file__).parent / "data" / "english.tsv"
_DATE_UNITS = {"年", "月", "日"}  # 2021年, 3月22日: dates, not figures (个月, 天 and 工作日 are durations)


@lru_cache(maxsize=1)
def _words() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    units: dict[str, str] = {}
    before: list[tuple[str, str]] = []
    for line in _TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, zh, en = (line.split("\t") + ["", ""])[:3]
        if kind == "unit":
            units[zh] = en
        elif kind == "before":
            before.append((zh, en))
    return units, tuple(sorted(before, key=lambda x: -len(x[0])))


def _plain(value: Decimal) -> str:
    v = value.normalize()
    if v == v.to_integral_value():
        return f"{int(v):,}"
    return f"{v:f}"


def money(value: Decimal) -> str:
    """CNY 2,000 · CNY 5 million · CNY 1.5 billion."""
    for size, word in ((Decimal(10) ** 9, "billion"), (Decimal(10) ** 6, "million")):
        if value >= size:
            return f"CNY {_plain(value / size)} {word}"
    return f"CNY {_plain(value)}"


def _is_date(m: NumberMention, sentence: str) -> bool:
    if m.unit not in _DATE_UNITS:
        return False
    if m.unit == "年":  # a year (2021年) or a date's year; 3年 as a duration is kept
        return Decimal(1900) <= m.value <= Decimal(2100) or sentence[m.end:m.end + 3].lstrip().startswith(("度", "底", "初"))
    return True  # 3月, 22日


def figure(m: NumberMention, sentence: str) -> str:
    """One figure in English, with the Chinese words it was written with: "up to CNY 500,000 (最高50万元)"."""
    units, before = _words()
    start = m.start
    qualifier = ""
    for zh, en in before:
        if sentence[max(0, start - len(zh)):start] == zh:
            qualifier, start = en, start - len(zh)
            break
    if m.unit == "元":
        core = money(m.value)
    else:
        unit = units.get(m.unit, "")
        core = f"{_plain(m.value)} {unit}".strip() if m.unit != "%" else f"{_plain(m.value)}%"
    if re.search(r"[余多]", m.surface) and not qualifier:
        qualifier = "over"
    per = qualifier.startswith("per ")
    text = f"{core} {qualifier}" if per else f"{qualifier} {core}".strip()
    return f"{text} ({sentence[start:m.end].strip()})"


def place_name(city: str) -> str:
    p = gazetteer().get(city)
    return f"{p.english} ({city})" if p is not None and p.english else city


_QUOTE = re.compile(r"(.*?)((?:\[\d+(?:\s*[,，、]\s*\d+)*\]\s*)+)", re.S)


def quotes(answer: str) -> list[tuple[str, list[int]]]:
    """The answer's quoted runs of text, each with the citation markers that close it."""
    return [(strip_markers(m.group(1)), markers_in(m.group(2))) for m in _QUOTE.finditer(answer)]


def english_lead(answer: str, citations: list[Citation], max_figures: int = 6) -> str:
    """The English line for an answer's Chinese quotes (empty when nothing is cited)."""
    if not citations:
        return ""
    city = {c.n: c.city for c in citations}
    places = list(dict.fromkeys(place_name(c.city) for c in citations if c.city))
    entries: list[str] = []
    count = 0
    for text, marks in quotes(answer):
        figs = list(dict.fromkeys(figure(m, text) for m in find_numbers(text) if not _is_date(m, text)))[: max(0, max_figures - count)]
        if not figs:
            continue
        count += len(figs)
        where = place_name(city.get(marks[0], "")) if len(places) > 1 and city.get(marks[0]) else ""
        entries.append((f"{where}: " if where else "") + "; ".join(figs) + " " + "".join(f"[{n}]" for n in dict.fromkeys(marks)))
        if count >= max_figures:
            break
    if len(places) > 1:
        head = f"From the replies of {', '.join(places)}"
    else:
        head = f"From the reply of {places[0] if places else 'the cited reply'}"
    if not entries:
        marks = "".join(f"[{c.n}]" for c in citations[:3])
        return f"{head}: the quoted Chinese text below answers this {marks}."
    return f"{head}: " + "; ".join(entries) + "."


def english_refusal(chinese: str, places: list[str] | None = None) -> str:
    if places:
        return f"No reply about {', '.join(place_name(p) for p in places)} is indexed, so this cannot be answered. ({chinese})"
    return f"The indexed replies do not answer this question. ({chinese})"
