"""Text normalisation and jieba tokenisation shared by BM25, the answerer and the evaluation."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).parent / "data"

STOPWORDS = set(
    """的 了 和 与 及 或 在 对 为 是 将 把 被 等 中 上 下 了 也 都 就 而 并 从 以 于 其 之 这 那 有 个 各 该 此 我 你 他 她 它 们
    我们 您 贵 呢 吗 吧 啊 么 什么 哪些 哪个 哪里 哪 多少 几 怎么 怎样 如何 是否 有没有 有无 请问 请 一下 给予 给 提供 多 少 情况 方面 相关
    关于 具体 主要 哪家 哪几 分别 呀 嘛 还 又 再 即 可 能 会 要 被 所 由 向 至 到 按 按照 通过 进行 开展 工作 已 已经 目前 截至 答复 回复
    市 省 政府 部门
    a an the of to in on for and or is are was were be by with what which who how many much does do did about at as from that this those these
    there their its it any each per""".split()
)

# words of the question that say how it is asked, not what it is about (not required in an answer)
QUESTION_STOP = set(
    """城市 地方 地区 各地 各市 各省 不同 对比 比较 分别 哪些城市 哪些地方 哪个城市 措施 做法 有何 做了 采取 举措 方面 内容 什么样
    哪方面 怎么样 哪些方面 主要 具体 一些 有关 相关 介绍 说说 谈谈 列举 多少钱 钱 which cities city
    那个 那些 那笔 这个 这些 这笔 那家 这家 一家 某家 为了 下去 出来 起来 大概 大约 左右 能 能不能 要不要 会不会 可不可以 有没有
    一下 到底 究竟 现在 如今 眼下 提到 提及 谈到 说到 都 还 又 呢 啊 嘛 替 帮 做 让 拿 给 送 找 带 搞 弄 打算 准备 想 需要 要 得 了
    几个 哪几个 几项 哪几项 几家 哪几家 几种 哪几种 几类 哪几类 几批 哪几批 一步 谁 你 您 我 用 哪位 哪个 哪家
    多长 长时间 多长时间 多久 说 最 老 当年 当时 两地 三地 四地 五地 几地 多地 各自 用来 叫 叫做
    里 中 内 上 下 时 后 前 间 等 各 该 此 其 之 与 及 和 或 并 对 向 从 在 于 把 被 将 作 县""".split()
)

_PUNCT_RE = re.compile(r"^[\W_]+$", re.UNICODE)


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    try:
        return opencc.OpenCC("t2s")
    except Exception:  # older bindings want the file name
        return opencc.OpenCC("t2s.json")


@lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    """The characters OpenCC's t2s conversion changes (a text without any is left alone, cheaply)."""
    probe = [chr(c) for c in range(0x4E00, 0xA000)]
    conv = _t2s().convert("".join(probe))
    return frozenset(a for a, b in zip(probe, conv) if a != b) if len(conv) == len(probe) else frozenset(probe)


def to_simplified(text: str) -> str:
    """Traditional characters as simplified (OpenCC t2s): a question in either script finds replies in both."""
    if not text or not any(ch in _traditional_chars() for ch in text):
        return text
    return _t2s().convert(text)


def normalise(text: str) -> str:
    """NFKC, simplified characters, then all whitespace removed: how evidence, answers and passages are compared."""
    return re.sub(r"\s+", "", to_simplified(unicodedata.normalize("NFKC", text)))


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    tk.load_userdict(str(_DATA / "userdict.txt"))
    return tk


@lru_cache(maxsize=1)
def _tagger():
    from jieba.posseg import POSTokenizer

    return POSTokenizer(_jieba())


def tagged_words(text: str) -> list[tuple[str, str]]:
    """jieba's words of `text` (normalised, lower-cased) with their part of speech (n, v, ns …), on the same
    dictionary as tokenize()."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    return [(w.word, w.flag) for w in _tagger().cut(text) if w.word.strip()]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """jieba's words of `text` as it is (no normalisation, so offsets index `text`): (word, start, end)."""
    return list(_jieba().tokenize(text))


def tokenize(text: str, for_search: bool = True) -> list[str]:
    """Lower-cased jieba tokens without punctuation and stop words (cut_for_search also emits sub-words)."""
    text = to_simplified(unicodedata.normalize("NFKC", text)).lower()
    tk = _jieba()
    words = tk.cut_for_search(text) if for_search else tk.cut(text)
    out = []
    for w in words:
        w = w.strip()
        if not w or w in STOPWORDS or _PUNCT_RE.match(w):
            continue
        out.append(w)
    return out


def _inflected(phrase: str) -> str:
    """A glossary phrase as a pattern that also matches its last word's plural and verb forms (entity ->
    entities, survey -> surveyed, introduce -> introducing); words may be joined by spaces or hyphens."""
    words = [re.escape(w) for w in phrase.split()]
    last = words[-1]
    if re.search(r"[^aeiou]y$", last):
        last = last[:-1] + r"(?:y|ies|ied|ying)"
    elif last.endswith("e"):
        last = last + r"(?:s|d)?|" + last[:-1] + "ing"
        last = f"(?:{last})"
    else:
        last = last + r"(?:s|es|ed|ing)?"
    return r"[\s-]+".join(words[:-1] + [last])


@lru_cache(maxsize=1)
def glossary() -> list[tuple[re.Pattern[str], str]]:
    """English -> Chinese domain terms, so English questions also match the Chinese text lexically."""
    pairs = []
    for line in (_DATA / "glossary.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        en, _, zh = line.partition("\t")
        pairs.append((re.compile(r"\b" + _inflected(en.strip()) + r"\b", re.I), zh.strip()))
    pairs.sort(key=lambda p: -len(p[0].pattern))
    return pairs


def glossed(chinese: str, english: str, min_cover: float = 0.5) -> bool:
    """Does an English text translate a Chinese name by the glossary (“小巨人” → little giant, “专精特新” → specialized)?
    Every glossary term the name holds (the longest ones) has one of its English phrases in the text, and those
    terms make up at least `min_cover` of the name: “三库”, which the glossary does not know, is not translated."""
    core = re.sub(r"[\W_]+", "", chinese)
    if not core:
        return False
    found = {t for _, zh in glossary() for t in zh.split() if len(t) >= 2 and t in core}
    found = {t for t in found if not any(t != u and t in u for u in found)}
    if not found or sum(len(t) for t in found) < min_cover * len(core):
        return False
    return all(any(t in zh.split() and rx.search(english) for rx, zh in glossary()) for t in found)


def expand_english(question: str) -> str:
    """Append the Chinese terms of any glossary phrase found in an English question."""
    if not re.search(r"[A-Za-z]{3,}", question):
        return ""
    extra = []
    for rx, zh in glossary():
        if rx.search(question):
            extra.append(zh)
    return " ".join(dict.fromkeys(" ".join(extra).split()))


@lru_cache(maxsize=1)
def domain_terms() -> frozenset[str]:
    """The domain dictionary's words (首贷户, 专精特新, 小巨人 …): the specific words of this field."""
    return frozenset(line.split()[0] for line in (_DATA / "userdict.txt").read_text(encoding="utf-8").splitlines() if line.strip())


# ---------------------------------------------------------------- paraphrases
@lru_cache(maxsize=1)
def synonym_groups() -> dict[str, tuple[str, ...]]:
    """Everyday wording -> the documents' wording (data/synonyms.tsv): every member maps to its group(s),
    official form first. 头一回 -> (首次, 第一次, 头一回, …)."""
    out: dict[str, list[str]] = {}
    path = _DATA / "synonyms.tsv"
    if not path.exists():
        return {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        group = [unicodedata.normalize("NFKC", w).lower() for w in line.split() if len(w) >= 2]
        for w in group:
            merged = out.setdefault(w, [])
            merged.extend(x for x in group if x not in merged)
    return {w: tuple(g) for w, g in out.items()}


@lru_cache(maxsize=1)
def _synonym_pattern() -> re.Pattern[str] | None:
    words = sorted(synonym_groups(), key=len, reverse=True)  # at each position the longest member wins
    return re.compile("|".join(map(re.escape, words))) if words else None


def find_synonyms(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The thesaurus phrases in text (non-overlapping, longest first), each with its group."""
    rx = _synonym_pattern()
    if rx is None:
        return []
    t = unicodedata.normalize("NFKC", text).lower()
    return [(m.group(0), synonym_groups()[m.group(0)]) for m in rx.finditer(t)]


_CN_DIGIT = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNIT = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(r"[零一二两三四五六七八九十百千]+(?=[万亿元家户人个项名套笔倍])")


def _cn_to_int(s: str) -> int | None:
    total, digit = 0, None
    for ch in s:
        if ch in _CN_DIGIT:
            if digit is not None:  # 一二: not a number
                return None
            digit = _CN_DIGIT[ch]
        else:
            total += (1 if digit is None else digit) * _CN_UNIT[ch]
            digit = None
    return total + (digit or 0)


def cn_numbers_to_digits(text: str) -> str:
    """百亿元 -> 100亿元, 两万人 -> 2万人: numbers as the replies write them (一家 is left alone)."""

    def repl(m: re.Match[str]) -> str:
        s = m.group(0)
        if len(s) == 1 and s not in "十百千" and text[m.end() : m.end() + 1] not in ("万", "亿"):
            return s  # 一家, 一次: words, not figures (两万, 三亿 are figures)
        n = _cn_to_int(s)
        return s if n is None else str(n)

    return _CN_NUMBER.sub(repl, text)


# the level of government a recognition or an award belongs to (市级专精特新, 省级小巨人, 国家级示范平台)
LEVELS = re.compile(r"(国家|省|市|区|县)级")


def colloquial(term: str) -> bool:
    """A thesaurus word that is not the field's own name for it (小公司 for 小微企业, 个体户 is 个体工商户's)."""
    group = synonym_groups().get(term)
    return term not in domain_terms() and bool(group) and group[0] != term


def equivalents(term: str) -> tuple[str, ...]:
    """The strings that count as `term` in a passage: itself, its thesaurus group, its figure in digits."""
    alts = [term, *synonym_groups().get(term, ())]
    digits = cn_numbers_to_digits(term)
    if digits != term:
        alts.append(digits)
    return tuple(dict.fromkeys(alts))


def mentions(text: str, word: str) -> bool:
    """Does `text` (normalised, lower-cased) say `word` or one of its equivalents?"""
    return any(e in text for e in equivalents(word))


_QUOTED = re.compile(r"[“\"「『]([^”\"」』]{2,16})[”\"」』]")


def quoted_phrases(text: str) -> list[str]:
    """Chinese names the question puts in quotation marks (“企业家日”): a passage must contain them. Not a quoted
    pattern given as an example (如“X.0版”)."""
    out = []
    for m in _QUOTED.finditer(text):
        p = m.group(1)
        if not re.search(r"[\u4e00-\u9fff]", p) or re.search(r"[XxＸ某…]|\.\.\.", p) or re.search(r"(如|比如|例如|像)\s*$", text[: m.start()]):
            continue
        out.append(normalise(p).lower())
    return out


# ---------------------------------------------------------------- what a question asks for
_ASKS_NUMBER = re.compile(
    r"多少|(?<![哪这近前后好])几(?:个(?!方面)|[家户项次场条名人年月天倍批期种所套本册亿万])|百分之几|几成|金额|数额|额度|比例|比重|占比|费率|利率|规模|数量|总额|余额|增长率|增速|多大|多高|多长|"
    r"哪一年|哪年|哪个月|哪月|何时|什么时候|哪一?天|哪一?日|几月几日|几号|日期|文号|发文字号|"
    r"\bdocument number\b|\bhow (much|many|long|high|large|often|frequently)\b|\bwhat (amount|percentage|share|number|proportion|size|value)\b|\b(interest )?rate\b|^\s*when\b|"
    r"\b(which|what) (year|month|date)\b",
    re.I,
)
# a question about a whole section: 沈阳在…方面做了哪些工作?
SECTION_QUESTION = re.compile(
    r"(哪些|什么|何种)(工作|措施|举措|做法|安排|打算|部署|成效|进展|行动|办法|政策|支持|服务|探索|创新)|怎样|如何|怎么|做了什么|做了哪些|有何(举措|措施|做法|进展|成效)|"
    r"哪[几一二三四五六七八九十两]?[个项]?方面|[几一二三四五六七八九十两]个方面|哪[几一二三四五六七八九十两]点|讲了哪些|"
    r"(介绍|谈|说明|阐述)了?(些)?(什么|哪些)|在[^，,。?？]{2,40}方面[^?？，,]{0,6}(什么|哪些)|"
    r"what (has|have|did|does|measures|steps|work)",
    re.I,
)
# an outline item's marker: 一、 (一) 1. 一是 ①
ITEM_MARKER = re.compile(r"^(第?[一二三四五六七八九十]+[、．.是]|[（(][一二三四五六七八九十\d]+[)）]|\d+[.、．]|[①-⑳])\s*")


def asks_number(question: str) -> bool:
    """多少家, 比例, 何时…: the answer is a figure or a date (a why-question is not, even when it names a 比例, nor
    最头疼的几个老问题是什么: the things, not how many)."""
    if re.search(r"为什么|为何|原因|\bwhy\b", question, re.I):
        return False
    if re.search(r"几[个项条类种大][^，,。?？多少]{0,12}(是什么|是哪些|有哪些|分别是|包括哪些|指什么)", question) and not re.search(r"多少", question):
        return False
    return bool(_ASKS_NUMBER.search(question))


def _bigrams(s: str) -> set[str]:
    s = re.sub(r"[\W\d_a-zA-Z]+", "", s)
    return {s[i : i + 2] for i in range(len(s) - 1)}


# the adverbs of official headings (大力开展…, 进一步提升…, 切实加强…): a question rarely repeats them
_HEADING_FILLER = re.compile(r"进一步|大力|加大|力度|着力|持续|不断|切实|积极|全力|全面|深入|扎实|有效|努力|坚持|加快|更加|高质量")


def heading_match(label: str, question: str) -> float:
    """Share of a heading's character bigrams found in the question (markers and 方面 ignored), both read in
    simplified characters (二、關于增強民營企業核心競爭力的問題 is asked as 增强民营企业核心竞争力)."""
    core = ITEM_MARKER.sub("", to_simplified(label))
    question = to_simplified(question)
    core = re.sub(r"^(在|关于)|方面$", "", core)
    core = _HEADING_FILLER.sub("", core) or core
    hb = _bigrams(core)
    if len(hb) < 2:
        return 0.0
    return len(hb & _bigrams(question)) / len(hb)


def best_heading(paths: list[list[str]], question: str, min_match: float) -> tuple[int, int] | None:
    """The section a question is about, among the section paths of the top passages: (which path, depth), the
    heading matching the question best (at least min_match), or None."""
    best: tuple[float, int, int] | None = None
    for i, path in enumerate(paths):
        for depth in range(1, len(path) + 1):
            m = heading_match(path[depth - 1], question)
            if m >= min_match and (best is None or m > best[0] + 1e-9):
                best = (m, i, depth)
    return None if best is None else best[1:]


def asks_for_section(question: str) -> bool:
    """沈阳在…方面做了哪些工作? (and not 多少…): the answer is a whole section of a reply."""
    return bool(SECTION_QUESTION.search(question)) and not asks_number(question)


# a sum in 万/亿 that counts nothing else (17.2万套 is flats, not money)
_WAN_AMOUNT = r"\d\s*(余|多)?\s*(万|亿)(?![余多]?[套间个家户人名项次件笔张台辆条场批期所位份吨亩])"
# measure words a passage must use itself (多少平方公里, 多少笔): the asked unit, never the thing asked about
MEASURE_UNITS = "平方公里|平方千米|平方米|立方米|公顷|公里|千米|千瓦时|千瓦|兆瓦|笔|张|台|辆|亩|吨|栋|座|件|份"
# the kind of quantity a question asks for -> what a supporting sentence must contain
_UNIT_ASKED = [
    # a document number (穗府办〔2016〕9号, 长银发2021〔45号〕): what a 文号 question asks, not any figure of its sentence
    ("docno", re.compile(r"文号|发文字号|\bdocument number\b", re.I),
     re.compile(r"[〔\[(（]\s*(19|20)\d{2}\s*[〕\])）]\s*第?\s*\d+\s*号|(19|20)\d{2}\s*[〔\[(（]\s*\d+\s*号\s*[〕\])）]")),
    # when: a date (年/月/日), so that 2021 年 10 月,我市率先发布… is quoted with its date
    ("date", re.compile(r"何时|什么时候|哪一年|哪年|哪一?天|哪一?日|几号|几月|哪个月|哪月|日期|^\s*when\b|\b(what|which) (year|date|month)\b", re.I), re.compile(r"(19|20)\d{2}\s*年|\d{1,2}\s*月|(19|20)\d{2}[-/.]\d")),
    # how often: a frequency (每季度, 每月一次, 定期), not a duration (多长时间盘点一次)
    ("frequency", re.compile(r"(多长时间|多久|隔多久|多少天|几个月|几天)[^，。?？]{0,16}一次|多久[^，。?？]{0,4}一回|\bhow often\b|\bhow frequently\b", re.I),
     re.compile(r"每\s*[一两半]?\s*个?\s*(季度|月|年|周|星期|天|日|半年|旬)|[一二两三四五六七八九十\d]+\s*个?\s*(季度|月|年|周|天|工作日)\s*(一次|1次)|定期|按季|按月|按年|季度|年度|月度")),
    # how long: a duration (个工作日, 天, 小时; "how long", "how many days")
    ("duration", re.compile(r"多长时间|多久|(多少|几)个?(工作日|天|小时|分钟)|\bhow long\b|\bhow many (working |business )?(days|hours|minutes)\b", re.I),
     re.compile(r"[\d一二两三四五六七八九十百千]\s*(余|多)?\s*(个)?\s*(工作日|天|小时|分钟|个月|周)|[一两]个?半(小时|天|个?月)")),
    ("count:家户", re.compile(r"(多少|几)(家|户)|\bhow many ([\w-]+ ){0,4}(firms|companies|enterprises|businesses|households|banks|institutions|smes|msmes|entities)\b", re.I),
     re.compile(r"[\d一二两三四五六七八九十百千万]\s*(余|多)?\s*(家|户)")),
    ("count:人", re.compile(r"(多少|几)(人|名|位)|\bhow many ([\w-]+ ){0,4}(people|persons|talents|experts|graduates|students|employees|workers|members)\b", re.I),
     re.compile(r"[\d一二两三四五六七八九十百千万]\s*(余|多)?\s*(人|名|位)")),
    # a measure word the passage must use itself: 多少笔贷款 is not answered by 6家银行
    ("measure", re.compile(rf"(多少|几)({MEASURE_UNITS})"), None),
    ("count:项", re.compile(r"(多少|几)(项|个|条|场|次|批|期|套|册|本|种|件|所)|\bhow many ([\w-]+ ){0,5}(industries|sectors|fields|projects|items|measures|"
                            r"policies|platforms|parks|bases|cent(?:re|er)s|funds|batches|sessions|events|activities|patents|chains|clusters|teams|"
                            r"schemes|programmes|programs|meetings|rounds)\b", re.I), re.compile(r"[\d一二两三四五六七八九十百千万]\s*(余|多)?\s*(项|个|条|场|次|批|期|套|册|本|种|件|所|家|户)")),
    # a share or rate: a figure in %, 成 or 倍 (按比例补助 states none); a change in 个百分点 only when a change is asked
    ("pct_change", re.compile(r"(比例|比重|费率|利率|占比)[^，。?？]{0,6}(降低|下降|提高|上升|增加|减少|下调|上调|降了|升了)|(降低|下降|提高|上升|增加|减少|下调|上调)[^，。?？]{0,8}(多少|几)个?百分点|(多少|几)个百分点|"
                            r"\bpercentage points?\b|\b(share|proportion|ratio|rate)\b[^,.?]{0,90}\b(rise|rose|risen|fall|fell|fallen|increase|increased|decrease|decreased|drop|dropped|go up|went up|go down|went down|change|changed)\b", re.I),
     re.compile(r"个百分点|\d\s*(%|％)|百分之")),
    ("pct", re.compile(r"(比例|比重|占比|百分之|增长率|增速|利率|费率|几成|多少成|percentage|\brate\b|proportion|\bshare of\b|\bper ?cent\b)", re.I), re.compile(r"\d\s*(%|％)|百分之|[\d一二三四五六七八九十]\s*成(?![立为果效本员功绩])|\d\s*倍")),
    # a fund's size is money (基金的总规模 is not answered by 可投规模的50%)
    ("fund_money", re.compile(r"(基金|资金|资本|资金池)[^，。?？]{0,12}(规模|总额|体量)"),
     re.compile(r"\d[\d.,，]*\s*(余|多)?\s*(万|亿)?\s*(美)?元|" + _WAN_AMOUNT)),
    # money: a figure in 元, or in 万/亿 not counting something else (17.2万套 is no rent)
    # by how much something rose or fell: a change, in whatever it is measured (效率提升可达75%, 贷款增加12亿元)
    ("change", re.compile(r"\bby how much\b|\bhow much (?:did|does|has|have|had|was|were|will)\b[^?]{0,80}\b(?:rise|rose|increase|improve|grow|grew|fall|fell|drop|decline|cut|reduce|raise|go up|went up)", re.I),
     re.compile(r"\d")),
    ("money", re.compile(r"多少钱|多少元|金额|奖金|奖励多少|多少奖励|补贴多少|多少补贴|补助多少|多少补助|资金|资本|租金|费用|多少万|多少亿|how much|amount", re.I),
     re.compile(r"[\d一二两三四五六七八九十百千]\s*(余|多)?\s*(万|亿)?\s*(美)?元|" + _WAN_AMOUNT)),
]


def unit_kind(question: str) -> str:
    """The kind of figure a question asks for (money, date, count:家户, measure:笔 …), or "" for none stated."""
    for name, asked, _ in _UNIT_ASKED:
        m = asked.search(question)
        if m:
            return f"measure:{m.group(2)}" if name == "measure" else name
    return ""


@lru_cache(maxsize=64)
def unit_pattern(kind: str) -> re.Pattern[str] | None:
    """How a sentence states a figure of that kind (None for no kind)."""
    if not kind:
        return None
    if kind.startswith("measure:"):
        return re.compile(rf"[\d一二两三四五六七八九十百千万]\s*(余|多)?\s*{re.escape(kind.split(':', 1)[1])}")
    return next(needed for name, _, needed in _UNIT_ASKED if name == kind)


def unit_check(question: str) -> re.Pattern[str] | None:
    return unit_pattern(unit_kind(question))


_MARKER_STYLES = (
    ("shi", re.compile(r"^第?[一二三四五六七八九十]+是")),
    ("dun", re.compile(r"^[一二三四五六七八九十]+[、．.]")),
    ("paren", re.compile(r"^[（(][一二三四五六七八九十]+[)）]")),
    ("num", re.compile(r"^[（(]?\d+[)）.、．]")),
    ("circle", re.compile(r"^[①-⑳]")),
)


def marker_style(sentence: str) -> str:
    """Which kind of outline marker a sentence starts with (一是 / 一、 / (一) / 1. / ①), or ""."""
    return next((name for name, rx in _MARKER_STYLES if rx.match(sentence)), "")


# a calendar date or month: no amount (2021年3月22日 is no GDP)
DATES = re.compile(r"(?:19|20)\d{2}\s*(?:年|[-/.])\s*(?:\d{1,2}\s*(?:月|[-/.])\s*(?:\d{1,2}\s*日?)?)?|\d{1,2}\s*月\s*(?:\d{1,2}\s*日)?(?:[-—至到~]\s*\d{1,2}\s*月)?|\d{1,2}\s*日")
# a name or title: its figures are part of a name (“千人帮千企”, 《2023年工作方案》), not figures stated
NAMES = re.compile(r"“[^”]{1,24}”|\"[^\"]{1,24}\"|《[^》]{1,60}》")
# a figure as a question or a sentence states it: digits or Chinese numerals, with an amount's or a count's unit
_FIGURE = re.compile(r"(?<![第\d.])(\d+(?:\.\d+)?)\s*(?:余|多)?\s*([万亿]*)\s*(元|家|户|个|项|名|人|位|%|倍|笔|件|条|所|款|张|套|台|次|批)")


def figures(text: str) -> set[tuple[str, str, str]]:
    """The amounts and counts a text states, as (number, 万/亿, unit) — 百亿元 and 100亿元 are one; dates,
    ordinals (第二批), document and proposal numbers (第0378号, 〔2020〕120号) and figures inside names aside."""
    t = NAMES.sub(" ", cn_numbers_to_digits(normalise(text)))
    t = re.sub(r"第\s*[A-Za-z]*\d+\s*号|[〔\[(（]\s*\d{4}\s*[〕\])）]\s*\d+\s*号", " ", t)
    t = DATES.sub(" ", t)
    return {(m.group(1).rstrip("0").rstrip(".") if "." in m.group(1) else m.group(1), m.group(2), m.group(3)) for m in _FIGURE.finditer(t)}


# ---------------------------------------------------------------- a reply's labelled header fields
# portals put a reply's record in "label: value" fields, on lines or in a table: 索 引 号:XM00103-…,
# 法规分类:国库管理, 主办单位(分办单位): | 科技厅 | 协办单位: | 省发展改革委 |
_FIELD = re.compile(r"(?:^|(?<=[|｜\n]))[ \t]*([\u4e00-\u9fff][\u4e00-\u9fff ()（）/]{1,16}?)[ \t]*[:：][ \t]*(?:[|｜][ \t]*)?([^|｜\n:：]{1,80}?)[ \t]*(?=[|｜]|\n|$)")


@dataclass(frozen=True)
class Field:
    label: str  # as written: 索 引 号, 主办单位(分办单位)
    value: str
    start: int  # the field's span in the text (label to value)
    end: int

    def names(self) -> list[str]:
        """What the label is called, spaces and brackets aside: 索引号; 主办单位 and 分办单位; 备注 and 文号; a label
        of the proposal's record also without the word for the proposal (建议办理类型 is its 办理类型)."""
        flat = re.sub(r"\s+", "", self.label)
        inner = re.findall(r"[(（]([^()（）]+)[)）]", flat)
        outer = re.sub(r"[(（][^()（）]*[)）]", "", flat)
        names = [n for part in [outer, *inner] for n in part.split("/") if n]
        return names + [m.group(1) for n in names if (m := re.fullmatch(r"(?:建议|提案|议案)(.{4,})", n))]


def header_fields(text: str) -> list[Field]:
    """Every "label: value" field of a text whose value is not empty (建议答复: alone on its line is a heading)."""
    out = []
    for m in _FIELD.finditer(text):
        value = m.group(2).strip()
        # a record's value, not a sentence of the body (一是加强服务:建立…，…。 is no field)
        if value and re.search(r"[\w\u4e00-\u9fff]", value) and not re.search(r"[。；;，,！？]", value):
            out.append(Field(m.group(1).strip(), value, m.start(1), m.end(2)))
    return out


def asked_fields(question: str, text: str, min_chars: int) -> list[Field]:
    """The fields of a text a question names by label (法规分类 in 在法规库中被归入哪一类法规分类?), labels of at least
    `min_chars` characters ([answer] field_label_chars: 时间, 来源 are too common a word to name a field)."""
    q = re.sub(r"\s+", "", question)
    return [f for f in header_fields(text) if any(len(n) >= min_chars and n in q for n in f.names())]
