"""Checks an LLM answer against the passages it was given (pure functions, no model, fast).

`verify(answer, passages)` with passages numbered 1..N (passages[0] is [1]):

* citation markers: [n], [n,m], [n-m], 【n】, ［n］, [资料n] are read; markers that point to no passage are
  removed, the others renumbered 1..M in order of first use (so every citation is used), repeats merged;
* sentences without any marker are listed in `unmarked` (headings such as "沈阳市:" and refusals are not);
* every number with a unit (2000元, 719户, 10万元, 1.5亿元, 2024年, 15%, 3个月, 30余场, 十万元, 百分之五 …)
  must occur in a passage the sentence cites (a sentence without markers: in any passage the answer cites).
  Text is compared after NFKC and whitespace removal, 1,000 = 1000, and by value (10万元 = 100000元 =
  十万元). Unsupported numbers are listed in `unsupported` and marked in the text: "2500元⚠";
* sentences that repeat the instructions (a 12-character run of a `secrets` text that no passage
  contains) are removed and listed in `leaked` — the defence against prompt injection asking the model
  to print its system prompt.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache

WARN = "⚠"
REFUSAL_MARK = "资料中未找到"

# ------------------------------------------------------------------ citation markers
_NUMS = r"\d{1,3}(?:\s*(?:[,，、;；]|[-–—~～至])\s*\d{1,3})*"
MARKER = re.compile(rf"[\[【［]\s*(?:资料|passage|source|来源|文献|ref\.?)?\s*({_NUMS})\s*[\]】］]", re.I)
_MARKER_AT = re.compile(rf"[ \t]*[\[【［]\s*(?:资料|passage|source|来源|文献|ref\.?)?\s*{_NUMS}\s*[\]】］]", re.I)
_CLEAN_MARKER = re.compile(r"\[(\d{1,3})\]")

_END_VERIFY = "。！？!?"
_END_CUT = "。；！？!?;"
_CLOSERS = "”’\"」』）)》"


def parse_marker(inner: str) -> list[int]:
    """'1, 3-5' -> [1, 3, 4, 5] (ranges longer than 20 are kept as their two ends)."""
    out: list[int] = []
    for part in re.split(r"\s*[,，、;；]\s*", inner.strip()):
        m = re.fullmatch(r"(\d+)\s*[-–—~～至]\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            out.extend(range(a, b + 1) if 0 <= b - a <= 20 else (a, b))
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def markers_in(text: str) -> list[int]:
    """All passage numbers cited in text, in order, with repeats."""
    return [n for m in MARKER.finditer(text) for n in parse_marker(m.group(1))]


def strip_markers(text: str) -> str:
    return MARKER.sub("", text).replace(WARN, "")


# ------------------------------------------------------------------ sentences
def sentence_spans(text: str, ends: str = _END_VERIFY) -> list[tuple[int, int]]:
    """Split text into sentences without losing a character: a sentence runs to its end punctuation
    (plus closing quotes and the citation markers right after it) or to the end of its line."""
    spans: list[tuple[int, int]] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            spans.append((start, i + 1))
            start = i = i + 1
            continue
        is_end = ch in ends or (ch == "." and "." not in ends and _english_stop(text, i))
        if is_end:
            j = i + 1
            while j < n and (text[j] in ends or text[j] in _CLOSERS):
                j += 1
            while True:
                m = _MARKER_AT.match(text, j)
                if not m:
                    break
                j = m.end()
            spans.append((start, j))
            start = i = j
            continue
        i += 1
    if start < n:
        spans.append((start, n))
    return spans


_ABBREVIATIONS = re.compile(r"(?:^|[^A-Za-z])(?:No|Nos|Art|Arts|Mr|Mrs|Ms|Dr|St|vs|e\.g|i\.e|approx|Co|Ltd|Inc|Corp)$")


def _english_stop(text: str, i: int) -> bool:
    """An ASCII period ends a sentence when a space, a marker or the end follows (not 1.5), and not after an
    abbreviation that a word follows (document No. 5, Co. Ltd.)."""
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    if before == "" or before.isspace() or not (after == "" or after in " \n\t["):
        return False
    return not (after == " " and _ABBREVIATIONS.search(text[max(0, i - 8):i]))


def split_sentences(text: str, ends: str = _END_VERIFY) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text, ends)]


def cut_at_sentence(text: str, fits, ends: str = _END_CUT, mark: str = "…") -> str | None:
    """The longest prefix of text ending at a sentence end (。；！？) for which fits(prefix + mark) is true,
    with `mark` appended; None when not even the first sentence fits."""
    cuts = []
    for a, b in sentence_spans(text, ends):
        seg = text[a:b].rstrip()
        if seg and seg[-1] in ends + _CLOSERS:
            cuts.append(a + len(seg))
    for end in reversed(cuts):
        cand = text[:end].rstrip() + mark
        if fits(cand):
            return cand
    return None


def _content(sentence: str) -> str:
    """The sentence without markers, warnings, whitespace and punctuation."""
    s = strip_markers(sentence)
    return "".join(ch for ch in s if not (ch.isspace() or unicodedata.category(ch)[0] in "PSZ"))


def is_refusal(text: str, refusal: str = "") -> bool:
    t = norm(text)
    r = norm(refusal).rstrip("。.!！") if refusal else ""
    return REFUSAL_MARK in t or bool(r and r in t)


def _is_heading(sentence: str) -> bool:
    s = strip_markers(sentence).strip()
    return bool(re.fullmatch(r".{0,30}[:：]", s)) or bool(re.fullmatch(r"#{1,6}\s.*|[-*]\s*", s))


# ------------------------------------------------------------------ numbers
def norm(text: str) -> str:
    """NFKC, no whitespace, no thousands separators (1,000 -> 1000)."""
    t = unicodedata.normalize("NFKC", text)
    t = re.sub(r"\s+", "", t)
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", t)


# units written in traditional characters (a reply published in them: 1億元, 30個項目), read as the simplified ones
_TRADITIONAL_UNITS = {"個百分點": "个百分点", "百分點": "百分点", "個工作日": "个工作日", "個月": "个月", "個季度": "个季度", "平方公裏": "平方公里",
                      "戶次": "户次", "分鐘": "分钟", "小時": "小时",
                      **dict(zip("個項場條歲屆輪種類處間張輛棟層筆臺畝噸戶", "个项场条岁届轮种类处间张辆栋层笔台亩吨户"))}
_UNITS = (
    "个百分点|百分点|个工作日|工作日|个月|个季度|季度|周岁|平方公里|平方米|千瓦时|万千瓦|千瓦|公里|千米|公顷|人次|户次|家次|"
    "千克|公斤|分钟|小时|元|户|家|个|项|次|场|条|名|人|年|月|日|天|周|倍|批|笔|件|所|座|台|套|亩|吨|岁|位|期|届|轮|"
    "种|类|款|份|支|处|间|张|本|篇|部|辆|栋|层|秒|米|克|%|％|‰|"
    + "|".join(sorted(_TRADITIONAL_UNITS, key=len, reverse=True))
)
_MAG = "万亿|亿|万|千|百|萬億|億|萬"
_CN_DIGITS = "〇零一二两三四五六七八九兩"
_CN_ALL = _CN_DIGITS + "十百千万亿萬億"
_AR = r"\d+(?:[,，]\d{3}(?!\d))*(?:\.\d+)?"
NUMBER = re.compile(
    rf"(?:百分之(?P<pct>{_AR}|[{_CN_ALL}]+(?:点[{_CN_DIGITS}]+)?))"
    rf"|(?<![\d.A-Za-z])(?P<ar>{_AR})[ \t]?(?P<m1>多|余)?(?P<mag>{_MAG})?(?P<m2>多|余)?(?P<unit>{_UNITS})?"
    rf"|(?P<cn>[{_CN_DIGITS}十][{_CN_ALL}]*)(?P<m3>多|余)?(?P<cunit>{_UNITS})",
)
_CN_VAL = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_MAG_VAL = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000, "万亿": 10**12, "萬": 10_000, "億": 100_000_000, "萬億": 10**12}
_UNIT_ALIAS = {"％": "%", "公斤": "千克", "千米": "公里", **_TRADITIONAL_UNITS}
_MONEY = {"元"}
# counted things that prose names in words ("三个方面", "两项措施"): not checked when written in Chinese numerals up to 10
_ENUM_UNITS = {"个", "项", "条", "种", "类", "部", "本", "篇", "张", "间", "处", "支", "份", "款", "位", "件", "期", "届", "轮", "层"}


def cn_to_number(s: str) -> Decimal | None:
    """Chinese numerals to a value: 十万 -> 100000, 一千二百 -> 1200, 二〇二四 -> 2024, 三点五 -> 3.5."""
    if not s:
        return None
    if "点" in s:
        whole, _, frac = s.partition("点")
        w = cn_to_number(whole) if whole else Decimal(0)
        if w is None or not frac or any(c not in _CN_VAL for c in frac):
            return None
        return w + Decimal("0." + "".join(str(_CN_VAL[c]) for c in frac))
    if all(c in _CN_VAL for c in s):  # digit by digit: 二〇二四
        return Decimal("".join(str(_CN_VAL[c]) for c in s)) if len(s) > 1 else Decimal(_CN_VAL[s])
    total, section, digit = Decimal(0), Decimal(0), None
    for c in s:
        if c in _CN_VAL:
            digit = _CN_VAL[c]
        elif c in ("十", "百", "千"):
            section += (digit if digit is not None else 1) * _MAG_VAL[c]
            digit = None
        elif c in ("万", "亿", "萬", "億"):
            section += digit or 0
            total = (total + section) * _MAG_VAL[c] if c in ("亿", "億") or total == 0 else total + section * _MAG_VAL[c]
            section, digit = Decimal(0), None
        else:
            return None
    return total + section + (digit or 0)


@dataclass(frozen=True)
class NumberMention:
    start: int
    end: int
    surface: str  # as written
    value: Decimal
    unit: str  # normalised unit ("" for a bare magnitude such as 10万)
    chinese: bool = False


def find_numbers(text: str) -> list[NumberMention]:
    """Numbers with a unit (or a magnitude such as 万/亿, or a percentage) in text."""
    out: list[NumberMention] = []
    for m in NUMBER.finditer(text):
        try:
            if m.group("pct") is not None:
                p = m.group("pct")
                v = Decimal(norm(p)) if re.match(r"\d", norm(p)) else cn_to_number(p)
                if v is None:
                    continue
                out.append(NumberMention(m.start(), m.end(), m.group(0), v, "%", chinese=True))
            elif m.group("ar") is not None:
                unit, mag = m.group("unit") or "", m.group("mag") or ""
                if not unit and not mag:
                    continue
                v = Decimal(norm(m.group("ar")).replace(",", "").replace("，", "")) * _MAG_VAL.get(mag, 1)
                out.append(NumberMention(m.start(), m.end(), m.group(0), v, _UNIT_ALIAS.get(unit, unit)))
            else:
                cn, unit = m.group("cn"), m.group("cunit")
                v = cn_to_number(cn)
                if v is None:
                    continue
                if v == 1 and unit not in _MONEY:  # 一个, 一项, 一次性, 第一批: words, not quantities
                    continue
                if v <= 10 and unit in _ENUM_UNITS:  # 三个方面, 两项措施
                    continue
                out.append(NumberMention(m.start(), m.end(), m.group(0), v, _UNIT_ALIAS.get(unit, unit), chinese=True))
        except (InvalidOperation, ValueError):
            continue
    return out


@lru_cache(maxsize=4096)
def _passage_facts(passage: str) -> tuple[str, frozenset[tuple[Decimal, str]]]:
    return norm(passage), frozenset((x.value.normalize(), x.unit) for x in find_numbers(passage))


def number_supported(mention: NumberMention, passages: list[str]) -> bool:
    """Does any passage contain this number: literally (after norm) or with the same value and unit?"""
    surface = norm(mention.surface)
    surface_plain = re.sub(r"(多|余)", "", surface)
    key = (mention.value.normalize(), mention.unit)
    for p in passages:
        text, facts = _passage_facts(p)
        if surface in text or surface_plain in text or key in facts:
            return True
        if mention.unit == "年" and 1900 <= mention.value <= 2100 and re.search(rf"(?<!\d){int(mention.value)}(?=[-/.年〕\])）]|$)", text):
            return True  # a year given in the date field (2024-06-05)
    return False


# ------------------------------------------------------------------ leaks
_SHINGLE = 12


def _shingles(text: str, k: int = _SHINGLE) -> set[str]:
    t = norm(text)
    return {t[i : i + k] for i in range(max(0, len(t) - k + 1))}


def leak_detector(secrets: list[str], passages: list[str], allowed: list[str] = (), k: int = _SHINGLE):
    """A function telling whether a sentence repeats a k-character run of the secrets (the instructions)
    that neither the passages nor the allowed texts (the refusal sentence) contain."""
    secret = set().union(*(_shingles(s, k) for s in secrets)) if secrets else set()
    if not secret:
        return lambda s: False
    benign = set().union(*(_shingles(p, k) for p in list(passages) + list(allowed))) if (passages or allowed) else set()
    secret -= benign

    def leaked(sentence: str) -> bool:
        return bool(_shingles(strip_markers(sentence), k) & secret)

    return leaked


# ------------------------------------------------------------------ verify
@dataclass
class Verified:
    text: str  # the answer with markers renumbered, bad markers removed, unsupported numbers marked ⚠
    cited: list[int] = field(default_factory=list)  # original passage numbers (1-based) in order of first use; new [i] = cited[i-1]
    unmarked: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    removed_markers: list[int] = field(default_factory=list)  # numbers that pointed to no passage
    leaked: list[str] = field(default_factory=list)  # sentences removed because they repeated the instructions
    refusal: bool = False
    sentences: dict[int, list[str]] = field(default_factory=dict)  # new citation number -> sentences citing it

    @property
    def empty(self) -> bool:
        return not _content(self.text)


def _dedupe_runs(text: str) -> str:
    """[1][1] -> [1]; [2][1][2] -> [2][1] (within one run of adjacent markers)."""

    def fix(m: re.Match) -> str:
        nums = list(dict.fromkeys(_CLEAN_MARKER.findall(m.group(0))))
        return "".join(f"[{n}]" for n in nums)

    return re.sub(r"\[\d{1,3}\](?:[ \t]*\[\d{1,3}\])+", fix, text)


def verify(answer: str, passages: list[str], secrets: list[str] = (), refusal: str = "", allowed: list[str] = ()) -> Verified:
    """Check `answer` against `passages` (numbered 1..N). See the module docstring."""
    text = (answer or "").replace(WARN, "").strip()
    n_pass = len(passages)

    # 1. sentences that repeat the instructions go first (their markers must not count as citations)
    leaked_list: list[str] = []
    if secrets:
        is_leak = leak_detector(list(secrets), passages, ([refusal] if refusal else []) + list(allowed))
        kept = []
        for s in split_sentences(text):
            if is_leak(s):
                leaked_list.append(s.strip())
            else:
                kept.append(s)
        text = "".join(kept).strip()

    # 2. markers: drop the ones pointing nowhere, renumber by first use
    order: dict[int, int] = {}
    removed: list[int] = []

    def renumber(m: re.Match) -> str:
        out = []
        for n in parse_marker(m.group(1)):
            if 1 <= n <= n_pass:
                order.setdefault(n, len(order) + 1)
                out.append(f"[{order[n]}]")
            else:
                removed.append(n)
        return "".join(dict.fromkeys(out))

    text = MARKER.sub(renumber, text)
    text = _dedupe_runs(text)
    text = re.sub(r"[ \t]+([。，；！？,.;!?])", r"\1", text)  # "…元 。" left by a removed marker
    cited = list(order)  # original numbers in order of first use
    support_all = [passages[n - 1] for n in cited]

    # 3. sentence checks
    unmarked: list[str] = []
    unsupported: list[str] = []
    by_cite: dict[int, list[str]] = {}
    pieces: list[str] = []
    refusal_seen = False
    for s in split_sentences(text):
        content = _content(s)
        nums = [int(x) for x in _CLEAN_MARKER.findall(s)]
        if is_refusal(s, refusal):
            refusal_seen = True
        if not content or _is_heading(s):
            pieces.append(s)
            continue
        if nums:
            for n in dict.fromkeys(nums):
                by_cite.setdefault(n, []).append(strip_markers(s).strip())
        elif not is_refusal(s, refusal):
            unmarked.append(strip_markers(s).strip())
        support = [passages[cited[n - 1] - 1] for n in dict.fromkeys(nums)] if nums else support_all
        marks = []
        for x in find_numbers(s):
            if not number_supported(x, support):
                marks.append(x)
                if x.surface not in unsupported:
                    unsupported.append(x.surface)
        for x in sorted(marks, key=lambda x: -x.end):
            s = s[: x.end] + WARN + s[x.end :]
        pieces.append(s)
    text = "".join(pieces).strip()
    return Verified(
        text=text,
        cited=cited,
        unmarked=unmarked,
        unsupported=unsupported,
        removed_markers=removed,
        leaked=leaked_list,
        refusal=refusal_seen and not cited,
        sentences=by_cite,
    )


def best_quote(sentence: str, passage: str, min_overlap: float = 0.5) -> str:
    """The passage sentence that best matches an answer sentence (character bigram containment), or ''."""

    def grams(t: str) -> set[str]:
        t = _content(t)
        return {t[i : i + 2] for i in range(len(t) - 1)}

    target = grams(sentence)
    if not target:
        return ""
    best, best_score = "", 0.0
    for cand in split_sentences(passage, _END_CUT):
        g = grams(cand)
        if not g:
            continue
        score = len(target & g) / min(len(target), len(g))
        if score > best_score:
            best, best_score = cand.strip(), score
    return best if best_score >= min_overlap else ""


__all__ = [
    "verify",
    "Verified",
    "find_numbers",
    "number_supported",
    "cn_to_number",
    "split_sentences",
    "sentence_spans",
    "cut_at_sentence",
    "markers_in",
    "strip_markers",
    "leak_detector",
    "is_refusal",
    "best_quote",
    "norm",
    "WARN",
    "REFUSAL_MARK",
]
