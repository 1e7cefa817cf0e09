"""The verification gate: an LLM answer is shown as the answer only if it passes every rule below.

`check(GateInput) -> GateResult`. The input is the model's answer as text with [n] markers numbered as the
passages of the prompt (1..N), the text each passage can support (its metadata and full text), the
instructions it must not repeat, and what the extractive answerer concluded. A failed gate means the
extractive answer is shown, with one line saying why (`GateResult.reason`); the model's text stays in
`Answer.llm`.

Rules (each a function returning the problems it found, in `RULES` order):

* ``content``     the answer says something (not only markers, symbols or whitespace);
* ``citations``   every sentence that states something carries a marker, and every marker names a passage
                  of the prompt (headings such as "〔城市〕:" and the refusal sentence need none);
* ``numbers``     every number with a unit (2000元, 15%, 3个月, 十万元 …) is in a passage its sentence cites
                  (rag.verify.number_supported: literally or by value, 10万元 = 100000元);
* ``english_numbers`` in English prose, every figure written in digits ("CNY 2,000", "20 million", "15%")
                  has its value in a cited passage (2,000 = 2000元; 20 million = 2000万元);
* ``repetition``  no repetition loop: no sentence of 12 characters or more said twice, no sentence or line said
                  three times, no run of a phrase repeated four times in a row;
* ``echo``        no prompt or template echo: no sentence repeating 12 characters of the instructions that no
                  passage contains, no placeholder (〔城市A〕, 〔金额〕), no passage header (城市：, 正文：,
                  <passage), no JSON left over from structured output;
* ``no_reply``    it does not contradict the extractive refusal of a place that has no reply: when the
                  question names a place the index has no reply of, only a refusal passes;
* ``refusal``     a refusal does not replace an extractive answer: when the extractive answerer found the
                  answer in the passages, the model refusing is not shown instead;
* ``figure``      a question asking for a figure (多少, how much, 何时) is not answered without one, and a question
                  asking an amount or a count is not answered with only a date;
* ``restates``    the answer is not the question said back: a sentence ending in a question mark, or an answer
                  whose words are (70 % of its character bigrams) the question's own and which states no figure of its own.
* ``omits``       it states the figures the extractive answer found (`[llm] gate_figures` of them, by value, in
                  either language): a model answer that drops them says less than the answer shown instead;
* ``originals``   in an English answer every figure in digits has the Chinese original in the brackets after it;
* ``language``    an English question is answered in English (english_share ≥ 0.6, originals in brackets aside);
* ``kept``        a translation keeps the Chinese its lines held in brackets (figures by value; places, dates,
                  document numbers and names in quotes as written, or a name in the glossary's English);
* ``places``      every place a sentence names (Chinese or English: 沈阳市, Shanghai) is one its cited passages name,
                  or the province or a place of one they name: "Shenyang (Shanghai)" fails;
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

from .english import DATE, english_dates, english_figures, english_share, has_original, is_english, needs_original
from .places import find_places, province_of
from .textproc import glossed
from .verify import (
    MARKER,
    REFUSAL_MARK,
    _content,
    _is_heading,
    find_numbers,
    is_refusal,
    leak_detector,
    norm,
    number_supported,
    parse_marker,
    split_sentences,
    strip_markers,
)


@dataclass
class GateInput:
    text: str  # the model's answer, markers [n] numbered as the prompt's passages
    passages: list[str]  # what passage n can support: passages[n-1] (metadata + full text)
    refusal: str = "资料中未找到能回答该问题的内容。"
    secrets: list[str] = field(default_factory=list)  # the instructions (system prompt, templates)
    allowed: list[str] = field(default_factory=list)  # texts that may be repeated (the comparative "not found")
    unknown_places: list[str] = field(default_factory=list)  # named in the question, no reply indexed
    extractive_abstained: bool = False  # the extractive answerer refused
    language: str = "zh"
    asks_figure: bool = False  # the question asks for a figure or a date (the plan's parts)
    asked_units: list[str] = field(default_factory=list)  # the kinds of figure the plan's parts ask (money, date, count:家 …)
    expected: list[str] = field(default_factory=list)  # the figures the extractive answer states (surfaces: 2000元, 10万元)
    min_expected: float = 0.5  # share of those an answer must state too (`[llm] gate_figures`)
    question: str = ""  # the question as asked (an answer that only restates it says nothing)
    terms: list[str] = field(default_factory=list)  # the question plan's key terms (Chinese, also for an English question)
    kept: list[str] = field(default_factory=list)  # a translation: the Chinese its lines held in brackets (rag.english.kept_originals)


@dataclass(frozen=True)
class Failure:
    rule: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


@dataclass
class GateResult:
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def rules(self) -> list[str]:
        return list(dict.fromkeys(f.rule for f in self.failures))

    @property
    def reason(self) -> str:
        """One line: the first problem of each failed rule."""
        seen: dict[str, str] = {}
        for f in self.failures:
            seen.setdefault(f.rule, f.detail)
        return "; ".join(seen.values())

    def to_dict(self) -> dict:
        return {"passed": self.passed, "failures": [f.to_dict() for f in self.failures]}


def _sentences(text: str) -> list[str]:
    return [s for s in split_sentences(text) if _content(s)]


def _is_refusal_sentence(s: str, inp: GateInput) -> bool:
    return is_refusal(s, inp.refusal) or any(a and norm(a) in norm(s) for a in inp.allowed)


def _says_something(s: str, inp: GateInput) -> bool:
    return bool(_content(s)) and not _is_heading(s) and not _is_refusal_sentence(s, inp)


def _cited(s: str) -> list[int]:
    return list(dict.fromkeys(n for m in MARKER.finditer(s) for n in parse_marker(m.group(1))))


def _support(s: str, inp: GateInput) -> list[str]:
    return [inp.passages[n - 1] for n in _cited(s) if 1 <= n <= len(inp.passages)]


def _short(s: str, limit: int = 40) -> str:
    s = re.sub(r"\s+", " ", strip_markers(s)).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ------------------------------------------------------------------ rules
def rule_content(inp: GateInput) -> list[str]:
    return [] if _content(inp.text) else ["the model's answer is empty"]


def rule_citations(inp: GateInput) -> list[str]:
    out: list[str] = []
    bad = sorted({n for m in MARKER.finditer(inp.text) for n in parse_marker(m.group(1)) if not 1 <= n <= len(inp.passages)})
    if bad:
        out.append(f"citation(s) {', '.join(f'[{n}]' for n in bad)} name no passage (there are {len(inp.passages)})")
    unmarked = [s for s in _sentences(inp.text) if _says_something(s, inp) and not _cited(s)]
    if unmarked:
        out.append(f"{len(unmarked)} sentence(s) without a citation: “{_short(unmarked[0])}”")
    return out


def rule_numbers(inp: GateInput) -> list[str]:
    missing: list[str] = []
    for s in _sentences(inp.text):
        support = _support(s, inp)
        if not support:
            continue  # no valid citation: the citations rule says so
        for x in find_numbers(strip_markers(s)):
            if not number_supported(x, support) and x.surface not in missing:
                missing.append(x.surface)
    return [f"{len(missing)} number(s) not in the cited passage: {'、'.join(missing[:5])}"] if missing else []


def _passage_values(passages: list[str]) -> tuple[set[Decimal], str]:
    values: set[Decimal] = set()
    for p in passages:
        for x in find_numbers(p):
            values.add(x.value.normalize())
    return values, norm(" ".join(passages))


def _date_supported(d, text: str) -> bool:
    return any(norm(c) in text for c in d.chinese())


def rule_english_numbers(inp: GateInput) -> list[str]:
    missing: list[str] = []
    question = norm(inp.question)
    asked_dates = {(d.year, d.month, d.day) for d in english_dates(inp.question)}
    for s in _sentences(inp.text):
        support = _support(s, inp)
        if not support:
            continue
        prose = strip_markers(s)
        values, text = _passage_values(support)
        dates = english_dates(prose)
        for d in dates:  # July 2, 2020: the passage writes 2020年7月2日 (or the question states it)
            if not (_date_supported(d, text) or _date_supported(d, question) or (d.year, d.month, d.day) in asked_dates):
                missing.append(d.text)
        for f in english_figures(prose):  # the Chinese originals are the numbers rule's
            if any(d.start <= f.start < d.end for d in dates):
                continue
            literal = f.scale in ("", "%", "percent") and re.search(rf"(?<![\d.]){re.escape(f.digits)}(?![\d]|\.\d)", text)
            if f.value in values or literal:
                continue  # "3239.00 million" for 3239.00亿元 is not the passage's figure: a scaled figure must match by value
            if f.is_year(prose) and re.search(rf"(?<!\d){f.digits}(?!\d)", question):
                continue  # a year the question states ("By the end of November 2020, …"): not the model's claim
            missing.append(f.text)
    return [f"{len(missing)} figure(s) not in the cited passage: {', '.join(missing[:5])}"] if missing else []


LONG_SENTENCE = 12  # content characters of a sentence that is a loop when said twice (a shorter one, three times)
_LOOP_UNIT = re.compile(r"(.{2,40}?)\1{3,}", re.S)


def rule_repetition(inp: GateInput) -> list[str]:
    out: list[str] = []
    counts: dict[str, int] = {}
    for s in _sentences(inp.text):
        key = _content(s)
        if len(key) >= 4:
            counts[key] = counts.get(key, 0) + 1
    lines: dict[str, int] = {}
    for ln in inp.text.split("\n"):
        key = _content(ln)
        if len(key) >= 4:
            lines[key] = lines.get(key, 0) + 1
    worst = max(list(counts.items()) + list(lines.items()), key=lambda kv: kv[1], default=("", 0))
    twice = [(k, n) for k, n in counts.items() if n >= 2 and len(k) >= LONG_SENTENCE]  # no answer says a whole sentence twice
    loop = worst if worst[1] >= 3 else (twice[0] if twice else None)
    if loop:
        out.append(f"a repetition loop: “{_short(loop[0], 24)}” said {loop[1]} times")
    else:
        t = norm(strip_markers(inp.text))
        for m in _LOOP_UNIT.finditer(t):
            unit = m.group(1)
            if re.fullmatch(r"[\d.,%]+|[\W_]+", unit):
                continue  # 100000000 or ……: not a phrase
            if unit * 4 in norm(" ".join(inp.passages)):
                continue
            out.append(f"a repetition loop: “{_short(unit, 24)}” repeated {len(m.group(0)) // len(unit)} times in a row")
            break
    return out


_PLACEHOLDER = re.compile(r"〔[^〕\d]{1,12}〕|\{[a-z_]{1,20}\}|\[[A-Za-z][A-Za-z _-]{1,20}\]|城市名|答案\[编号\]|资料编号")
_HEADER = re.compile(r"(?:^|\n)\s*(?:城市|发文单位|标题|章节|日期|正文|问题|回答)[：:]|‹?<\s*/?\s*passage|</?\s*passage", re.I)
_JSON_LEFT = re.compile(r"[\"“”]\s*(?:sentences|citations|refusal|text)\s*[\"“”]\s*:|\}\s*,\s*\{")


def rule_echo(inp: GateInput) -> list[str]:
    out: list[str] = []
    if inp.secrets:
        leaked = leak_detector(list(inp.secrets), inp.passages, [inp.refusal, *inp.allowed])
        bad = [s for s in _sentences(inp.text) if leaked(s)]
        if bad:
            out.append(f"{len(bad)} sentence(s) repeat the instructions: “{_short(bad[0])}”")
    joined = norm(" ".join(inp.passages))
    ph = [m.group(0) for m in _PLACEHOLDER.finditer(inp.text) if norm(m.group(0)) not in joined]
    if ph:
        out.append(f"the prompt's placeholder {ph[0]} copied into the answer")
    if "……" in inp.text and "……" not in joined:
        out.append("the template's “……” copied into the answer")
    m = _HEADER.search(inp.text)
    if m and norm(m.group(0)) not in joined:
        out.append(f"a passage header copied into the answer ({m.group(0).strip()})")
    if _JSON_LEFT.search(inp.text):
        out.append("structured output left as JSON in the answer")
    return out


def _answer_refuses(inp: GateInput) -> bool:
    sents = _sentences(inp.text)
    return bool(sents) and all(_is_refusal_sentence(s, inp) or _is_heading(s) for s in sents)


def rule_no_reply(inp: GateInput) -> list[str]:
    if not inp.unknown_places:
        return []
    places = "、".join(inp.unknown_places)
    if not _answer_refuses(inp):
        return [f"the index has no reply about {places}, the model answered anyway"]
    return []


def rule_refusal(inp: GateInput) -> list[str]:
    if inp.extractive_abstained or inp.unknown_places:
        return []
    if _answer_refuses(inp) or (REFUSAL_MARK in norm(inp.text) and not _cited(inp.text)):
        return ["the model refused although the passages answer the question"]
    return []




def rule_figure(inp: GateInput) -> list[str]:
    if not inp.asks_figure or _answer_refuses(inp):
        return []
    body = strip_markers(inp.text)
    if inp.asked_units and not any(u == "date" for u in inp.asked_units):
        body = DATE.sub(" ", body)  # a date is never the answer to an amount or a count
    if find_numbers(body) or re.search(r"\d", body) or re.search(r"[一二两三四五六七八九十百千万亿]", body):
        return []
    return ["the question asks for a figure and the answer states none"]


def _bigrams(t: str) -> set[str]:
    c = _content(t)
    return {c[i : i + 2] for i in range(len(c) - 1)}


def rule_restates(inp: GateInput) -> list[str]:
    sents = [s for s in _sentences(inp.text) if _says_something(s, inp)]
    if not sents:
        return []
    asking = [s for s in sents if re.search(r"[?？]\s*$", strip_markers(s).strip())]
    if asking:
        return [f"the answer asks a question instead of answering: “{_short(asking[0])}”"]
    if inp.question:
        mine, theirs = _bigrams(" ".join(sents)), _bigrams(inp.question)
        asked = _values(inp.question)
        new_figures = [v for v in _values(" ".join(sents)) if v not in asked]  # Chinese or English figures (2000 yuan)
        if mine and len(mine & theirs) / len(mine) >= 0.7 and not new_figures:
            return ["the answer only restates the question"]
    return []


_UNFINISHED = re.compile(
    r"(?:[:：,，、;；(（\-–—]|\b(?:are|is|was|were|include|includes|including|of|the|a|an|and|or|to|as|by|for|with|such as))\s*$"
    r"|(?:包括|如下|分别为|分别是|主要有|以下)\s*$", re.I)


def rule_unfinished(inp: GateInput) -> list[str]:
    """A sentence that stops before it says anything: "…the members who submitted the proposal are:[1]",
    "主要包括：[1]" (a cut-off or an empty list; the citation would vouch for nothing)."""
    cut = [s for s in _sentences(inp.text) if _UNFINISHED.search(strip_markers(s).strip().rstrip(".。"))]
    return [f"a sentence stops before it says anything: “{_short(cut[0])}”"] if cut else []


_CN_DATE = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月(?:\s*(\d{1,2})\s*[日号])?")


def _date_scopes(passage: str) -> list[tuple[tuple[int, int, int | None], str]]:
    """Each full date of a passage (2021年10月, 2020年4月10日) with what follows it up to the next date or the
    sentence's end: what the passage says happened then (2021 年 10 月,我市…发布《…行动计划》)."""
    found = list(_CN_DATE.finditer(passage))
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(passage)
        stop = re.search(r"[。；;！？!?]", passage[m.end():end])
        scope = passage[m.end(): m.end() + stop.start()] if stop else passage[m.end():end]
        out.append(((int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None), norm(scope).lower()))
    return out


def rule_dates(inp: GateInput) -> list[str]:
    """A date the answer gives is the passage's date of what was asked: when the cited passage states several dates
    (2021年10月 发布《…行动计划》, 2023年9月 印发《…实施方案》), the one the answer states must be followed by as
    many of the question's key terms as any other (a small model answered the action plan's date with the
    other plan's)."""
    terms = [norm(t).lower() for t in dict.fromkeys(inp.terms) if re.search(r"[\u4e00-\u9fff]", t)]
    if not terms:
        return []
    wrong: list[str] = []
    for s in _sentences(inp.text):
        prose = strip_markers(s)
        stated = [(d.year, d.month, d.day) for d in english_dates(prose) if d.year is not None]
        stated += [(int(m.group(1)), int(m.group(2)), int(m.group(3)) if m.group(3) else None) for m in _CN_DATE.finditer(prose)]
        if not stated:
            continue
        for passage in _support(s, inp):
            scopes = _date_scopes(passage)
            if len({d for d, _ in scopes}) < 2:
                continue
            fit = {}
            for d, scope in scopes:
                fit[d] = max(fit.get(d, 0), sum(1 for t in terms if t in scope))
            best = max(fit.values())
            for y, mo, day in stated:
                mine = [v for (yy, mm, dd), v in fit.items() if yy == y and mm == mo and (day is None or dd in (day, None))]
                if mine and max(mine) < best:
                    wrong.append(f"{y}年{mo}月" + (f"{day}日" if day else ""))
    return [f"the cited passage ties {wrong[0]} to something else than what was asked"] if wrong else []


def rule_originals(inp: GateInput) -> list[str]:
    """In an English answer every figure in digits has the passage's Chinese original in the brackets after it
    ("CNY 100 billion (1000亿元)"): the reader can check it against the passage, and 亿 read as billion shows."""
    if inp.language != "en" or _answer_refuses(inp):
        return []
    bare: list[str] = []
    for s in _sentences(inp.text):
        prose = strip_markers(s)
        bare += [f.text for f in english_figures(prose) if needs_original(prose, f) and not has_original(prose, f)]
    return [f"{len(bare)} English figure(s) without the Chinese original beside them: {', '.join(bare[:5])}"] if bare else []


def rule_language(inp: GateInput) -> list[str]:
    """An English question gets an English answer (the Chinese originals in brackets do not count)."""
    if inp.language != "en" or _answer_refuses(inp):
        return []
    share = english_share(inp.text)
    if share < 0.6:
        return [f"an English question answered in another language ({share:.0%} English words)"]
    return []


def _values(text: str) -> set[Decimal]:
    """Every figure's value in text: Chinese figures (10万元 = 100000) and English ones (CNY 2,000; 20 million)."""
    prose = strip_markers(text)
    out = {x.value.normalize() for x in find_numbers(prose)}
    out.update(f.value for f in english_figures(prose))
    return out


def rule_omits(inp: GateInput) -> list[str]:
    """The model's answer states the figures the extractive answer found (by value, in any language): an answer
    that drops them says less than what would be shown instead."""
    if not inp.expected or inp.extractive_abstained or _answer_refuses(inp):
        return []
    have = _values(inp.text)
    missing = [e for e in dict.fromkeys(inp.expected) if not (_values(e) & have)]
    if len(missing) > (1 - inp.min_expected) * len(set(inp.expected)) + 1e-9:
        return [f"{len(missing)} of {len(set(inp.expected))} figure(s) of the extractive answer missing: {', '.join(missing[:5])}"]
    return []


def rule_places(inp: GateInput) -> list[str]:
    """A sentence names only places its cited passages name (or their provinces, or places within them): a model
    that wrote "Shenyang (Shanghai)" or put one city's figure under another's name is not shown."""
    out = []
    places: dict[int, set[str]] = {}  # each cited passage's places and their provinces, read once

    def of(n: int) -> set[str]:
        if n not in places:
            found = {full for full, _, _ in find_places(inp.passages[n - 1])}
            places[n] = found | ({province_of(k) for k in found} - {""})  # 辽宁省 for a passage about 沈阳市
        return places[n]

    for s in _sentences(inp.text):
        cited = [n for n in _cited(s) if 1 <= n <= len(inp.passages)]
        if not cited:
            continue  # uncited: `citations` speaks
        named = {full for full, _, _ in find_places(strip_markers(s))}
        if not named:
            continue
        known = set().union(*(of(n) for n in cited))
        alien = [n for n in named if n not in known]
        if alien:
            out.append(f"names {', '.join(sorted(alien))}, which no passage it cites names: “{_short(s)}”")
    return out


_QUOTE_MARKS = str.maketrans("", "", "“”‘’《》「」\"' ")


def _kept_form(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3})", "", norm(strip_markers(text)).translate(_QUOTE_MARKS))


def rule_kept(inp: GateInput) -> list[str]:
    """A translation keeps the Chinese its lines held in brackets: every figure (by value, in either language),
    and every place, date, document number and name in quotes as written. A translation that drops one (the
    three cities of a list, 雏鹰—瞪羚—领军 turned into other animals) says less than the quotes it replaces."""
    if not inp.kept:
        return []
    have, text, prose = _values(inp.text), _kept_form(inp.text), strip_markers(inp.text)
    missing = []
    for k in dict.fromkeys(inp.kept):
        nums = [x.value.normalize() for x in find_numbers(k)]
        if nums and all(v in have for v in nums):
            continue
        if _kept_form(k) not in text and (nums or not glossed(k, prose)):
            missing.append(k)  # a name the glossary translates (“小巨人” → little giant) is kept in English too
    if missing:
        return [f"{len(missing)} of {len(set(inp.kept))} original(s) of the translated lines missing: {', '.join(missing[:4])}"]
    return []


RULES: dict[str, Callable[[GateInput], list[str]]] = {
    "content": rule_content,
    "citations": rule_citations,
    "numbers": rule_numbers,
    "english_numbers": rule_english_numbers,
    "repetition": rule_repetition,
    "echo": rule_echo,
    "no_reply": rule_no_reply,
    "refusal": rule_refusal,
    "figure": rule_figure,
    "restates": rule_restates,
    "unfinished": rule_unfinished,
    "dates": rule_dates,
    "language": rule_language,
    "originals": rule_originals,
    "omits": rule_omits,
    "places": rule_places,
    "kept": rule_kept,
}


def check(inp: GateInput, rules: list[str] | None = None) -> GateResult:
    """Run every rule (or the named ones) and collect what they found."""
    res = GateResult()
    if not rule_content(inp):
        names = list(rules or RULES)
    else:
        names = ["content"]  # nothing to check further
    for name in names:
        for detail in RULES[name](inp):
            res.failures.append(Failure(name, detail))
    return res


__all__ = ["GateInput", "GateResult", "Failure", "RULES", "check", "english_share", "is_english"]
