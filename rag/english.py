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
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from .places import english_level, english_names, find_places, gazetteer
from .types import Citation
from .verify import MARKER, NumberMention, find_numbers, markers_in, parse_marker, sentence_spans, strip_markers

_TABLE = Path(__file__).parent / "data" / "english.tsv"
_DATE_UNITS = {"年", "月", "日", "号"}  # 2021年, 3月22日, 12号: dates, not figures (个月, 天 and 工作日 are durations)
# units a protected figure keeps its English unit word for even when a word follows (三年新增 → 3 years (三年) 新增)
_DURATION_UNITS = {"年", "个月", "月", "天", "日", "个工作日", "工作日", "小时", "周", "倍"}


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


def is_date(m: NumberMention, sentence: str) -> bool:
    """2024年, 3月, 15日, 12号, 2021年度: part of a date (an English answer writes "March 2024"), not a figure."""
    if m.unit not in _DATE_UNITS:
        return False
    if m.unit == "年":  # a year (2021年) or a date's year; 3年 as a duration is kept
        return Decimal(1900) <= m.value <= Decimal(2100) or sentence[m.end:m.end + 3].lstrip().startswith(("度", "底", "初"))
    return True  # 3月, 22日


def _figure(m: NumberMention, sentence: str, unit_words: bool = True) -> tuple[int, str]:
    """Where a figure starts with its qualifier (最高, 每月) and its English form with the Chinese beside it.
    `unit_words=False`: money and percentages keep their unit, counts are bare numbers (1,752 (1752家)), for a
    sentence whose nouns a model translates."""
    units, before = _words()
    start = m.start
    qualifier = ""
    for zh, en in before:
        if sentence[max(0, start - len(zh)):start] == zh:
            qualifier, start = en, start - len(zh)
            break
    if m.unit == "元":
        core = money(m.value)
    elif m.unit == "%":
        core = f"{_plain(m.value)}%"
    else:
        unit = units.get(m.unit, "") if unit_words else ""
        core = f"{_plain(m.value)} {unit}".strip()
    if re.search(r"[余多]", m.surface) and not qualifier:
        qualifier = "over"
    per = qualifier.startswith("per ")
    text = f"{core} {qualifier}" if per else f"{qualifier} {core}".strip()
    return start, f"{text} ({sentence[start:m.end].strip()})"


def figure(m: NumberMention, sentence: str) -> str:
    """One figure in English, with the Chinese words it was written with: "up to CNY 500,000 (最高50万元)"."""
    return _figure(m, sentence)[1]


def place_english(city: str) -> str:
    """Tianjin for 天津市; a place below the gazetteer's level by its pinyin and level: Zigui County; "" unknown."""
    p = gazetteer().get(city)
    if p is not None and p.english:
        return p.english
    names, level = english_names(city), english_level(city)
    return f"{names[0]} {level}" if names and level else ""


def place_name(city: str) -> str:
    """Tianjin (天津市), Zigui County (秭归县); the Chinese name alone when it has no English one."""
    english = place_english(city)
    return f"{english} ({city})" if english else city


_QUOTE = re.compile(r"(.*?)((?:\[\d+(?:\s*[,，、]\s*\d+)*\]\s*)+)", re.S)


def quotes(answer: str) -> list[tuple[str, list[int]]]:
    """The answer's quoted runs of text, each with the citation markers that close it."""
    return [(strip_markers(m.group(1)), markers_in(m.group(2))) for m in _QUOTE.finditer(answer)]


# a document number (穗府办〔2015〕26号, 长银发2021〔45号〕): named as it is, its digits are no figures
_DOC_NUMBER = re.compile(r"[\u4e00-\u9fff]{0,10}(?:[〔\[]\s*(?:19|20)\d{2}\s*[〕\]]\s*第?\s*\d+\s*号|(?:19|20)\d{2}\s*〔\s*\d+\s*号\s*〕)")


def english_lead(answer: str, citations: list[Citation], max_figures: int = 6) -> str:
    """The English line for an answer's Chinese quotes (empty when nothing is cited)."""
    if not citations:
        return ""
    city = {c.n: c.city for c in citations}
    places = list(dict.fromkeys(place_name(c.city) for c in citations if c.city))
    entries: list[str] = []
    count = 0
    for text, marks in quotes(answer):
        docs = [f"document No. {d}" for d in dict.fromkeys(m.group(0) for m in _DOC_NUMBER.finditer(text))]
        figs = list(dict.fromkeys(docs + [figure(m, text) for m in find_numbers(_DOC_NUMBER.sub(lambda d: " " * len(d.group(0)), text)) if not is_date(m, text)]))
        figs = figs[: max(0, max_figures - count)]
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


# a name a translating model keeps in Chinese: in quotes (“雏鹰”, ‘一链一行’) or a title (《行动计划》), up to 40 characters
_QUOTED_NAME = re.compile(r"“[^“”]{1,40}”|‘[^‘’]{1,40}’|《[^《》]{1,40}》|「[^「」]{1,40}」")
# a Chinese date a translating model reads already in English: 2021年10月 → October 2021, 6月7日 → June 7
_ZH_DATE = re.compile(r"(?<!\d)(?:((?:19|20)\d{2})\s*年\s*)?(\d{1,2})\s*月(?:\s*(\d{1,2})\s*[日号])?")
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
                "December")


def _english_date(m: re.Match) -> str:
    """October 2021, June 7, July 2, 2020 (a match with a year or a day)."""
    year, month, day = m.group(1), int(m.group(2)), m.group(3)
    name = _MONTH_NAMES[month - 1]
    if day:
        return f"{name} {int(day)}, {year}" if year else f"{name} {int(day)}"
    return f"{name} {year}"


def protect(sentence: str) -> str:
    """A quoted Chinese sentence as a translating model reads it: every figure already in English with its Chinese
    original beside it (16346亿元 → CNY 1634.6 billion (16346亿元), 1.1万家 → 11,000 firms (1.1万家)), every date
    with a month in English (2021年10月 → October 2021 (2021年10月)), every document number in brackets after "document No.", every
    place by its English name with the Chinese beside it (Shenyang (沈阳)) and every name in quotes or 《》 in brackets.
    A count followed by its noun is a bare number (1752家企业 → 1,752 (1752家)企业), else it has its unit word.
    What a small model gets wrong when it translates (亿 as billion, 万 as million, a dropped figure) is then only
    copying; the gate still checks what it wrote against the unprotected sentence."""
    edits: list[tuple[int, int, str]] = []

    def put(a: int, b: int, text: str) -> None:
        """Rewrite sentence[a:b] unless an earlier rewrite covers part of it."""
        if not any(a < y and x < b for x, y, _ in edits):
            edits.append((a, b, text))

    for d in _DOC_NUMBER.finditer(sentence):
        put(d.start(), d.end(), f"document No. ({d.group(0)})")
    for q in _QUOTED_NAME.finditer(sentence):  # a name in quotes or a title: kept in Chinese, in brackets
        put(q.start(), q.end(), f" ({q.group(0)}) ")
    for full, a, b in find_places(sentence):  # a place: its English name, the Chinese beside it
        english = place_english(full)
        if english:
            put(a, b, f" {english} ({sentence[a:b]}) ")
    for m in _ZH_DATE.finditer(sentence):  # a date with a year or a day (11月末 is left to the model)
        month = int(m.group(2))
        if 1 <= month <= 12 and (not m.group(3) or 1 <= int(m.group(3)) <= 31) and (m.group(1) or m.group(3)):
            put(m.start(), m.end(), f"{_english_date(m)} ({m.group(0).strip()})")
    for m in find_numbers(sentence):
        if is_date(m, sentence) or m.unit == "%":
            continue  # a percentage is written the same in English
        # 1752家企业: the model translates 企业, a unit word would repeat it (a duration, 三年新增, keeps its "years")
        noun_follows = bool(_CJK.match(sentence, m.end)) and m.unit not in _DURATION_UNITS
        start, text = _figure(m, sentence, unit_words=not noun_follows)
        put(start, m.end, f" {text} ")
    out, cursor = [], 0
    for a, b, text in sorted(edits):
        out += [sentence[cursor:a], text]
        cursor = b
    out.append(sentence[cursor:])
    return "\n".join(re.sub(r" {2,}", " ", line).strip() for line in "".join(out).split("\n"))


def kept_originals(protected: str) -> list[str]:
    """The Chinese a translation of protected lines must keep: every bracket of them that holds Chinese
    (figures' originals, dates, document numbers, names in quotes, places)."""
    return [m.group(1).strip() for m in re.finditer(r"\(([^()]*)\)", protected) if _CJK.search(m.group(1))]


def translation_lines(quote: str, max_chars: int = 30) -> str:
    """A quote as a translating model gets it: one sentence per line (a clause list split at ；), a sentence longer
    than `max_chars` ([llm] translate_line_chars) cut at its commas into lines of clauses up to that length; each
    line protected. A grammar backend then asks for one English sentence per line
    (rag.structured.translation_schema): a small model given a long sentence summarised it and dropped figures."""
    lines: list[str] = []
    for a, b in sentence_spans(quote, ends="。！？!?；;"):
        sentence = quote[a:b].strip()
        if len(sentence) <= max_chars:
            lines.append(sentence)
            continue
        current = ""
        for clause in re.findall(r"[^，,]+(?:[，,]|$)", sentence):
            if current and len(current) + len(clause) > max_chars:
                lines.append(current)
                current = ""
            current += clause
        lines.append(current)
    return "\n".join(protect(x.strip()) for x in lines if re.search(r"\w", x))


def english_refusal(chinese: str, places: list[str] | None = None) -> str:
    if places:
        return f"No reply about {', '.join(place_name(p) for p in places)} is indexed, so this cannot be answered. ({chinese})"
    return f"The indexed replies do not answer this question. ({chinese})"


# ------------------------------------------------------------------ figures in an English answer
# An English answer states figures in digits ("CNY 2,000", "20 million", "15%"). `english_figures` finds them (the
# gate checks their values); `render_originals` writes, for each one the cited passages state, the passage's own
# figure beside it: "CNY 100 billion (1000亿元)". The English form of a money figure is then rendered by code from
# the passage's Chinese figure (`money`), not by the model, so 亿 read as billion cannot reach the reader.
EN_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?\s*(%|percent\b|per\s*cent\b|thousand\b|million\b|billion\b|trillion\b|bn\b|m\b)?",
    re.I,
)
_EN_SCALE = {"thousand": Decimal(10**3), "million": Decimal(10**6), "m": Decimal(10**6), "billion": Decimal(10**9), "bn": Decimal(10**9), "trillion": Decimal(10**12)}
_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
# a date written with digits (2024-03-01, 2024年3月, 3月22日): never a figure to translate or to count as an answer
DATE = re.compile(r"(?:19|20)\d{2}\s*[-/.年]\s*(?:0?[1-9]|1[0-2])(?!\d)(?:\s*[-/.月]\s*\d{1,2}\s*日?)?|(?:19|20)\d{2}\s*年|\d{1,2}\s*月\s*\d{1,2}\s*日")
_BRACKET = re.compile(r"[(（][^()（）]*[)）]")
_ORIGINAL_AFTER = re.compile(r"[^()（）]{0,40}?[(（]([^()（）]*)[)）]")
_MONEY_BEFORE = re.compile(r"(?:\b(?:CNY|RMB|yuan)\s*|[¥￥]\s*)$", re.I)
_MONEY_AFTER = re.compile(r"^\s*(?:yuan\b|RMB\b|CNY\b)", re.I)
_YEAR_BEFORE = re.compile(r"\b(?:in|since|by|of|from|until|till|to|before|after|during|year|years|end|early|late|mid|as|between|and|"
                          r"January|February|March|April|May|June|July|August|September|October|November|December)[\s-]*$", re.I)


@dataclass(frozen=True)
class EnglishFigure:
    start: int
    end: int
    text: str  # as written: "2,000", "20 million", "15%"
    digits: str  # "2000", "3239.00"
    scale: str  # "", "%", "percent", "million", …
    value: Decimal  # normalised: "20 million" = 20000000

    def is_year(self, prose: str) -> bool:
        """1900–2100 written as a year: after "in", "since", "of" … or before punctuation ("in 2024", "March 2024,"),
        not as an amount ("2000 yuan", "CNY 2000", "2000 firms")."""
        if self.scale or re.fullmatch(r"\d{4}", self.digits) is None or not 1900 <= int(self.digits) <= 2100:
            return False
        before, after = prose[: self.start], prose[self.end :]
        if _MONEY_BEFORE.search(before) or _MONEY_AFTER.match(after):
            return False
        return bool(_YEAR_BEFORE.search(before) or re.match(r"\s*(?:$|[,.;:)）'’–-]|and\b|to\b)", after))


def english_figures(prose: str) -> list[EnglishFigure]:
    """The figures written in digits in English prose (markers already stripped or masked): not the Chinese figures
    (find_numbers finds those: 2000元, 10万元) and not a bare digit inside Chinese text."""
    taken = [(x.start, x.end) for x in find_numbers(prose)]
    out: list[EnglishFigure] = []
    for m in EN_NUMBER.finditer(prose):
        if any(a <= m.start() < b for a, b in taken):
            continue
        scale = (m.group(3) or "").lower().replace(" ", "")
        if _CJK.search(prose[max(0, m.start() - 1) : m.start()] + prose[m.end() : m.end() + 1]) and not scale:
            continue  # a digit inside Chinese text: find_numbers' business
        digits = m.group(1).replace(",", "") + (m.group(2) or "")
        try:
            value = (Decimal(digits) * _EN_SCALE.get(scale, Decimal(1))).normalize()
        except InvalidOperation:
            continue
        written = m.group(0).rstrip()
        out.append(EnglishFigure(m.start(), m.start() + len(written), written, digits, scale, value))
    return out


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december")
_MONTH = r"(January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?"
EN_DATE = re.compile(
    rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s*((?:19|20)\d{{2}}))?\b"  # July 2, 2020 · June 7
    rf"|\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s*((?:19|20)\d{{2}}))?\b"  # 2 July 2020
    rf"|\b{_MONTH}\s+((?:19|20)\d{{2}})\b",  # March 2024
    re.I,
)


@dataclass(frozen=True)
class EnglishDate:
    start: int
    end: int
    text: str
    year: int | None
    month: int
    day: int | None

    def chinese(self) -> list[str]:
        """How a Chinese text writes this date: 2020年7月2日, 7月2日, 2020年7月 (and 2020-07-02 style)."""
        m, d, y = self.month, self.day, self.year
        out = []
        if d is not None:
            out += [f"{m}月{d}日", f"{m}月{d}号"]
            if y is not None:
                out += [f"{y}年{m}月{d}日", f"{y}-{m:02d}-{d:02d}", f"{y}.{m}.{d}", f"{y}/{m}/{d}"]
        else:
            out += [f"{y}年{m}月", f"{y}-{m:02d}", f"{y}.{m}"] if y is not None else [f"{m}月"]
        return out


def english_dates(prose: str) -> list[EnglishDate]:
    """Dates written the English way ("July 2, 2020", "2 July", "March 2024"): their digits are a date, not figures."""
    out: list[EnglishDate] = []
    for m in EN_DATE.finditer(prose):
        g = m.groups()
        if g[0]:
            month, day, year = g[0], g[1], g[2]
        elif g[4]:
            month, day, year = g[4], g[3], g[5]
        else:
            month, day, year = g[6], None, g[7]
        mi = next(i for i, name in enumerate(_MONTHS, 1) if name.startswith(month.lower().rstrip(".")[:3]))
        if day is not None and not 1 <= int(day) <= 31:
            continue
        out.append(EnglishDate(m.start(), m.end(), m.group(0), int(year) if year else None, mi, int(day) if day else None))
    return out


def english_share(text: str) -> float:
    """Latin words against CJK characters outside brackets (the Chinese originals beside figures do not count)."""
    t = _BRACKET.sub(" ", strip_markers(text))
    words = len(_LATIN_WORD.findall(t))
    cjk = len(_CJK.findall(t)) / 2  # two characters make about one word
    return words / (words + cjk) if words + cjk else 0.0


def is_english(text: str) -> bool:
    return english_share(text) >= 0.6


def has_original(prose: str, f: EnglishFigure) -> bool:
    """A bracket with a Chinese figure follows the English figure (within 40 characters)."""
    after = _ORIGINAL_AFTER.match(prose, f.end)
    return bool(after and find_numbers(after.group(1)))


def needs_original(prose: str, f: EnglishFigure) -> bool:
    """A figure of an English answer that must have its Chinese original beside it: not a year, not a date (2024-03,
    July 2, 2020), not a percentage (15% is written the same in both languages)."""
    if f.is_year(prose) or f.scale in ("%", "percent") or DATE.match(prose, f.start):
        return False
    if any(m.start() < f.start < m.end() for m in _BRACKET.finditer(prose)):
        return False  # inside the brackets: an original or an aside ("(2020-07-02)"), not a figure of the English text
    return not any(d.start <= f.start < d.end for d in english_dates(prose))


@dataclass(frozen=True)
class Rendered:
    before: str  # the model's words: "100 billion yuan"
    after: str  # what replaced them: "CNY 100 billion (1000亿元)"
    kind: str  # "original": the passage's figure put beside; "rescaled": the model's digits were the passage's
    # but its scale word was not (3239.00亿元 written "3239.00 billion"), so the English is the passage's value

    def to_dict(self) -> dict[str, str]:
        return {"before": self.before, "after": self.after, "kind": self.kind}


def _digits(m: NumberMention) -> str:
    d = re.match(r"[\d.,，]+", m.surface.translate(str.maketrans("０１２３４５６７８９．", "0123456789.")))
    return d.group(0).replace(",", "").replace("，", "") if d else ""


def _masked(sentence: str) -> str:
    return MARKER.sub(lambda m: " " * len(m.group(0)), sentence)


# a bracket a model adds after a figure's Chinese original, restating the figure in English: "470 (470名) (470 people)"
_ECHO = re.compile(r"(?<=[)）])\s*[(（][^()（）\u3000-\u9fff]*\d[^()（）\u3000-\u9fff]*[)）]")


def drop_echoes(text: str) -> str:
    """Remove the English restatement a model writes after a figure's Chinese original (it copied the protected
    "470 (470名)" and added "(470 people)"); the figure and its original stay, and the gate reads no second figure."""
    return _ECHO.sub("", text)


def render_originals(text: str, passages: list[str]) -> tuple[str, list[Rendered]]:
    """Put the cited passage's Chinese figure beside every English figure of `text` that lacks one.

    `passages[n-1]` is what marker [n] cites. Per sentence, an English figure whose value a cited passage states
    gets that figure in brackets; a money figure is re-rendered from the passage (CNY 2,000 (每月2000元)). A money
    figure whose digits are a cited figure's but whose value is not (the model wrote 亿 as billion or 万 as million)
    is replaced by the passage's figure in English, marked "rescaled". An English date the passage states gets the
    passage's date beside it ("June 7 (6月7日)"). Anything else is left as the model wrote it: the gate's
    `english_numbers` and `originals` rules judge it."""
    out: list[str] = []
    done: list[Rendered] = []
    for a, b in sentence_spans(text):
        sentence = text[a:b]
        cited = [n for m in MARKER.finditer(sentence) for n in parse_marker(m.group(1))]
        support = [passages[n - 1] for n in dict.fromkeys(cited) if 1 <= n <= len(passages)]
        if not support:
            out.append(sentence)
            continue
        masked = _masked(sentence)
        edits = sorted(_date_edits(sentence, masked, support) + _figure_edits(sentence, masked, support), key=lambda e: e[0])
        pieces: list[str] = []
        cursor = 0
        for start, end, new, kind in edits:
            if start < cursor:
                continue
            pieces += [sentence[cursor:start], new]
            done.append(Rendered(sentence[start:end].strip(), new, kind))
            cursor = end
        pieces.append(sentence[cursor:])
        out.append("".join(pieces))
    return "".join(out), done


def _date_edits(sentence: str, masked: str, support: list[str]) -> list[tuple[int, int, str, str]]:
    text = unicodedata.normalize("NFKC", " ".join(support))
    edits = []
    for d in english_dates(masked):
        after = _ORIGINAL_AFTER.match(masked, d.end)
        if after and re.search(r"\d", after.group(1)):
            continue  # a bracket with digits follows already
        found = next((c for c in sorted(d.chinese(), key=len, reverse=True) if re.search(rf"(?<!\d){re.escape(c)}", text)), None)
        if found:
            edits.append((d.start, d.end, f"{sentence[d.start:d.end]} ({found})", "original"))
    return edits


def _figure_edits(sentence: str, masked: str, support: list[str]) -> list[tuple[int, int, str, str]]:
    mentions = [(x, p) for p in support for x in find_numbers(p) if not is_date(x, p)]
    edits = []
    for f in english_figures(masked):
        if has_original(masked, f) or not needs_original(masked, f):
            continue
        lead = _MONEY_BEFORE.search(masked[: f.start])
        tail = _MONEY_AFTER.match(masked[f.end :])
        is_money = bool(lead or tail)
        same = [(x, p) for x, p in mentions if x.value.normalize() == f.value]
        if is_money:
            same = [(x, p) for x, p in same if x.unit == "元"]
        else:
            same.sort(key=lambda xp: xp[0].unit == "元")  # a count before a sum of money of the same value
        kind = "original"
        if not same and is_money:
            same = [(x, p) for x, p in mentions if x.unit == "元" and _digits(x) == f.digits and x.value.normalize() != f.value]
            kind = "rescaled"
            if len({x.value for x, _ in same}) != 1:
                continue  # no cited figure, or several it could be: leave it to the gate
        if not same:
            continue
        x, _ = same[0]
        if is_money:
            start, end = (lead.start() if lead else f.start), f.end + (tail.end() if tail else 0)
            edits.append((start, end, f"{money(x.value)} ({x.surface.strip()})", kind))
        else:
            edits.append((f.start, f.end, f"{sentence[f.start:f.end].rstrip()} ({x.surface.strip()})", kind))
    return edits


_CN_DATE = re.compile(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月(?:\s*(\d{1,2})\s*[日号])?|(\d{4})\s*年")


def states_figures_of(item: str, answer: str) -> bool:
    """Does an English `answer` state every figure of a Chinese text (a gold must_include item: 2016年, 500个产品,
    2020年4月10日, 10.33亿元), by value (2016; 500 (500个) products; April 10, 2020; CNY 1.033 billion)?
    Only the figures are compared, not the words around them (产品 of 500个产品), and a text without a figure is
    not stated this way. An answer that is not English states nothing this way: Chinese is compared as written."""
    if not is_english(answer):
        return False
    t = strip_markers(answer)
    said = {f.value for f in english_figures(t)} | {m.value.normalize() for m in find_numbers(t)}
    dates = english_dates(t)
    wanted = 0
    spans = []
    for m in _CN_DATE.finditer(item):
        wanted += 1
        spans.append((m.start(), m.end()))
        if m.group(4):  # a year alone: its digits as a number of the answer
            if not re.search(rf"(?<!\d){m.group(4)}(?!\d)", t):
                return False
            continue
        y, mo, d = (int(x) if x else None for x in (m.group(1), m.group(2), m.group(3)))
        if not any(e.month == mo and (d is None or e.day == d) and (y is None or e.year in (y, None)) for e in dates) \
                and re.sub(r"\s+", "", m.group(0)) not in re.sub(r"\s+", "", t):
            return False
    for n in find_numbers(item):
        if any(a <= n.start < b for a, b in spans):
            continue
        wanted += 1
        if n.value.normalize() not in said:
            return False
    return wanted > 0
