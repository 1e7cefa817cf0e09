"""Stage 6a: the extractive answerer (no LLM, works offline).

It quotes the sentences of the retrieved passages that answer the question, word for word, each followed
by its citation marker [n]:
- a fact question gets the best sentence for each part of the question (…多少?…多少? has two parts);
- a question about a whole section (…方面做了哪些工作?) gets that section's items, one line each;
- a comparative question gets one line per city/document.
It abstains (资料中未找到…) when nothing supports an answer: the place asked about has no reply, too few
of the question's key terms occur, the year asked about is not in the passage, or the question asks for
an amount of some kind (多少家, 多少钱, 比例…) and the best passage states none.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Callable

from .parser import split_sentences
from .places import find_places
from .retriever import Query
from .textproc import (
    ITEM_MARKER,
    QUESTION_STOP,
    SECTION_QUESTION,
    asks_number,
    best_heading,
    cn_numbers_to_digits,
    domain_terms,
    equivalents,
    expand_english,
    find_synonyms,
    mentions,
    normalise,
    quoted_phrases,
    tokenize,
    unit_check,
)
from .types import Answer, Chunk, Citation, Hit

_NUMBER = re.compile(r"\d|[一二两三四五六七八九十百千万亿]+(?:个|家|户|项|次|场|条|名|人|年|倍|批|亿|万|期)")
# what a figure is asked for, and how a sentence states it: a maximum (最高可补贴多少 -> 最高/不超过/上限), a rate
# per unit (每家/每人/每月 -> 每…/一次性/分别)
_QUALIFIERS = [
    (re.compile(r"最高|最多|上限|封顶|at most|maximum", re.I), re.compile(r"最高|最多|上限|封顶|不超过|不高于|以内|最大|允许")),
    (re.compile(r"每(家|户|个|人|名|位|年|月|季度|次|项)|per (company|enterprise|person|year|month)|\beach\b", re.I), re.compile(r"每|一次性|分别|人均|户均|年均|/(人|年|月)")),
]
# 第二批, 第十七届, 6.0版: an ordinal in the question must be the passage's
_ORDINAL = re.compile(r"第[一二三四五六七八九十\d]+[批届版期]")
# a district or county named in the question (黄埔区) must be in the passage (the gazetteer stops at county-level cities)
_DISTRICT = re.compile(r"([\u4e00-\u9fff]{2})(?:区|县)(?![\u4e00-\u9fff]?(?:企业|内|外|域))")
# 专区, 厂区, 园区…: a common word ending in 区 is no district (its first character before 区); 津市区, 辽宁省县…
_COMMON_QU = set("专社景学营禁误盲雷展城园片湾港山郊老辖市地新街厂矿林牧灾赛校住小分特试警战库疫省")
_NOT_A_DISTRICT = {"自贸", "园区", "城区", "地区", "市区", "辖区", "社区", "开发", "新区", "示范", "试验", "集聚", "功能", "合作", "港区", "景区", "片区", "湾区", "老区", "山区", "郊区", "全区", "各区", "本区", "该区", "城乡"}


def _is_district(name: str) -> bool:
    """Is the name before 区/县 (黄埔 of 黄埔区) a district's, not part of a common word (专区, 自贸区, 市区)?"""
    return name not in _NOT_A_DISTRICT and name[-1] not in _COMMON_QU


# 有什么奖励 / 哪些补贴: the kind of benefit asked about must be in the passage
_KIND_ASKED = re.compile(r"(?:什么|哪些|何种|哪种|哪类)(奖励|补贴|补助|优惠|资助|待遇|奖补|补偿)")
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")
_YEAR_EN = re.compile(r"\b((?:19|20)\d{2})\b")
_MONTH = re.compile(r"(?<![\d年])(?:\d{1,2}\s*[-—~至到]\s*)?(\d{1,2})\s*月|(?<=年)(\d{1,2})\s*月")
_QWORD = re.compile(r"多少|几|哪|什么|何|是否|怎样|如何|谁|how|what|which|when|who", re.I)
NOT_FOUND = "资料中未找到能回答该问题的内容。"


def question_parts(question: str) -> list[str]:
    """'…发布了多少融资需求?累计放款多少?' -> two parts, each with its own question word."""
    pieces = [p for p in re.split(r"[?？;；]|[,，](?=[^,，]*(?:多少|几|哪|什么|是否))|,?\s+and\s+(?=(?:to\s+|for\s+|in\s+)?(?:how|what|which|when|who)\b)", question, flags=re.I) if p and p.strip()]
    parts = [p for p in pieces if _QWORD.search(p)]
    return parts if len(parts) >= 2 else [question]


_GENERIC_HEAD = set(
    """每个 每月 每年 每人 一共 总共 分别 各 钱 元 家 户 个 人 名 项 次 场 条 批 套 本 册 种 件 企业 公司 资金 金额 数量 规模 比例 标准
    情况 时间 日期 年 月 天 是 多 有 给 给予 提供 发放 获得 达到 累计 共 一共 总共 目前 已经 能 可以 可 将
    拿到 得到 享受 取得 收到 完成 实现 办理 申请 申报 部分 方面 方式 办法 机构 单位 部门""".split()
)


@lru_cache(maxsize=512)
def head_terms(part: str) -> tuple[str, ...]:
    """The words a quantity question is about: next to 多少/几/是多少 (多少购房补贴 -> 购房, 补贴).
    Cached: _check asks it for every candidate sentence, and it runs jieba."""
    m = re.search(r"(?:是|有|为|达到?|给予?|提供|发放|奖励|补贴)?(多少|几)", part)
    if not m:
        return ()
    unit = re.match(r"(?:[个家户人名位项次场条批期套笔张台辆所份种件]|人次)", part[m.end():])  # 多少人去参加: 人 is the unit
    after = re.match(r"[\u4e00-\u9fff]{0,6}", part[m.end() + (unit.end() if unit else 0):]).group(0)
    before = re.search(r"[\u4e00-\u9fff]{0,4}$", part[: m.start()]).group(0)

    def words(window: str) -> list[str]:  # a thesaurus phrase stays whole (利息补贴, not 利息 + 补贴)
        phrases = [p for p, _ in find_synonyms(window)]
        toks = [t for t in tokenize(window, for_search=False) if not any(t != p and t in p for p in phrases)]
        toks += [p for p in phrases if p not in toks]
        toks.sort(key=lambda t: window.find(t))
        places = {window[a:b] for _, a, b in find_places(window)}  # 湖南有多少家: the place is a filter, not a head
        return [t for t in toks if t not in _GENERIC_HEAD and t not in QUESTION_STOP and t not in places and len(t) >= 2 and not _QWORD.search(t)]

    if after and unit:  # 多少人下沉蹲点 / 多少家企业授信: after the unit comes what they did, told by its last word
        return tuple(words(after)[-1:])
    if after:  # 多少购房补贴: the words after it; 多少企业: a generic word, nothing to check
        return tuple(words(after)[:2])
    # …奖励多少 / 注册资本是多少: the word before it
    return tuple(words(before)[-1:])


def _figure_near_head(part: str) -> re.Pattern[str] | None:
    """A figure written right next to the thing asked about: 为多少家企业授信 -> '4534家企业授信', '授信34.41亿元'."""
    heads = [a for t in head_terms(part) for a in equivalents(t)]
    if not heads:
        return None
    h = "|".join(map(re.escape, heads))
    fig = r"\d[\d.,]*\s*(?:余|多)?\s*(?:万|亿)?\s*[\u4e00-\u9fff%]?"
    return re.compile(rf"{fig}[^，。；,;]{{0,6}}(?:{h})|(?:{h})[^，。；,;]{{0,6}}\d")


def _year_stated(year: str, passage: str, date: str, english: bool = False) -> bool:
    """The passage is about `year`: it names it, or says 今年/去年 in a reply dated that year / the next.
    An English question's year may be the reply's own (answered in May 2023) when the passage names no other."""
    passage = re.sub(r"《[^》]*》", "", passage)  # 《…三年行动方案(2023—2025年)》 names a plan, it dates nothing
    if year in passage:
        return True
    dated = re.match(r"\s*((?:19|20)\d{2})", date or "")
    if not dated:
        return False
    reply_year = int(dated.group(1))
    if english and int(year) == reply_year and not _YEAR.search(passage):
        return True
    return (int(year) == reply_year and bool(re.search(r"今年|本年度?|年内", passage))) or (
        int(year) == reply_year - 1 and bool(re.search(r"去年|上年|上一年", passage))
    )


def _named_concepts(terms: list[str], part: str) -> list[str]:
    """The domain dictionary's names (首贷户, 创新型中小企业…) among the key terms of `part`, longest only."""
    low = normalise(part).lower()
    names = [t for t in terms if t in domain_terms() and t in low]
    return [t for t in names if not any(t != o and t in o for o in names)]


def _first_line(chunks: list[Chunk], patterns: tuple[re.Pattern[str], ...]) -> tuple[Chunk, str] | None:
    """The first line, or sentence of a line, matching a pattern (patterns tried in order of preference)."""
    for rx in patterns:
        for c in chunks:
            for ln in c.text.split("\n"):
                for x in (ln.strip(), *split_sentences(ln.strip())):
                    if len(x) <= 200 and rx.search(x):
                        return c, x
    return None


def _is_heading(sentence: str, path: list[str]) -> bool:
    """Is this line the heading of the section asked about or of one above it (一、工作开展情况)? Those are no answer."""
    core = normalise(ITEM_MARKER.sub("", sentence)).rstrip("。.")
    return any(core == normalise(ITEM_MARKER.sub("", label)).rstrip("。.") for label in path)


def _is_item_title(sentence: str) -> bool:
    """A short sentence naming an item (三是推动组建产学研联盟。) rather than stating its content."""
    return len(sentence) <= 24 and not _NUMBER.search(ITEM_MARKER.sub("", sentence))


@dataclass
class _Sent:
    text: str
    hit: Hit
    score: float
    coverage: float
    has_number: bool
    order: int
    pieces: tuple[str, ...] = ()  # the verbatim pieces of the passage shown as `text` (when it joins several)


def _next_sentence(sents: list[_Sent], s: _Sent) -> _Sent | None:
    """The sentence after `s` in the same passage (what an item title goes on to say)."""
    return next((x for x in sents if x.order == s.order + 1 and x.hit is s.hit), None)


def _head_clauses(sentence: str, limit: int) -> str:
    """A long sentence cut after its last whole clause within `limit` characters (an item is told by its start)."""
    if len(sentence) <= limit:
        return sentence
    out = ""
    for m in re.finditer(r"[^，,；;：:]*[，,；;：:]?", sentence):
        if out and len(out) + len(m.group(0)) > limit:
            break
        out += m.group(0)
    return out.rstrip("，,；;：:") or sentence[:limit]


def _clauses_window(sentence: str, scorer: Callable[[str], float], limit: int = 160) -> str:
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
            # the start of a sentence holds its subject and time: a window keeping it is preferred
            s = scorer(text) + (0.05 if _NUMBER.search(text) else 0) - 0.0005 * len(text) + (0.03 if i == 0 else 0.0)
            if s > best_score:
                best, best_score = text, s
    return best.rstrip("，,；;：:")


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(
        self,
        coverage: Callable[[Query, str], float],
        min_coverage: float = 0.34,
        min_dense: float = 0.80,
        min_coverage_figure: float = 0.1,
        section_chunks: Callable[[str, list[str]], list[Chunk]] | None = None,
        whole_section_chars: int = 600,
        known: Callable[[str], bool] | None = None,
        section_match: float = 0.5,
        comparative_share: float = 0.5,
    ):
        self.comparative_share = comparative_share  # a city's best sentence vs the best city's, to be listed
        self.section_match = section_match  # share of a heading's bigrams a question must repeat to be about it
        self.whole_section_chars = whole_section_chars
        self.known = known  # does any indexed passage use this word?
        self.coverage = coverage
        self.min_coverage = min_coverage
        self.min_coverage_figure = min_coverage_figure
        self.min_dense = min_dense
        self.section_chunks = section_chunks

    # -------------------------------------------------------------- public
    def answer(self, q: Query, hits: list[Hit]) -> Answer:
        ans = self._answer(q, hits)
        ans.question = q.text
        return ans

    def _answer(self, q: Query, hits: list[Hit]) -> Answer:
        if q.unknown_places:
            places = "、".join(q.unknown_places)
            return Answer(q.text, f"资料中未找到关于{places}的答复,无法回答该问题。", True, [])
        if not hits:
            return Answer(q.text, NOT_FOUND, True, [])
        if q.comparative:
            return self._comparative(q, hits)
        meta = self._document_facts(q, hits)
        if meta is not None:
            return meta
        sec = self._section(q, hits)
        if sec is not None:
            return sec
        return self._single(q, hits)

    # -------------------------------------------------------------- questions about the reply itself
    _META_INTENTS = [
        # who made the proposal: the deputies named with it (谭聪圣代表提出的…), else the salutation (徐兵、陈志奇委员:)
        (re.compile(r"(哪位|哪个|哪些|哪几位|谁).{0,6}(代表|委员)|针对.{0,8}(谁|哪位)|答复(对象|给谁)|向谁答复|(谁|哪位|哪几位|哪些人)提出|addressed to|which ([\w-]+ )?(deputy|deputies|delegates?|members?)|who (submitted|proposed|raised|made|put forward)", re.I),
         (re.compile(r"[\u4e00-\u9fff、]{2,24}(代表|委员)(等\d*人)?(提出|联名|[:：])"), re.compile(r"^(尊敬的)?[^\s:：，,。]{2,30}[:：]$"))),
        # the proposal's number (第0239号代表建议) and the reply's document number (沪经信建〔2020〕65号) are two things
        (re.compile(r"(建议|提案|议案)》?[^《》]{0,8}(编号|第几号)|编号[^《》]{0,6}(建议|提案)|建议号|提案号|number of the (proposal|suggestion)", re.I), re.compile(r"第\s*[A-Za-z0-9（）()〔〕\[\]\-]{2,24}\s*号")),
        (re.compile(r"(答复|复函|回复)[^?？]{0,40}文号|文号[^《》]{0,6}(答复|复函)", re.I), re.compile(r"[\u4e00-\u9fff]{0,8}[〔\[(（]\d{4}[〕\])）]\s*\d+\s*号")),
        (re.compile(r"落款|答复日期|哪天(答复|发布)|落款日期|签发|何时答复|什么时候答复|date of the reply", re.I), re.compile(r"^(19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$")),
    ]

    def _document_facts(self, q: Query, hits: list[Hit]) -> Answer | None:
        """Who the reply answers, its number, its date: quoted from the reply's opening or closing lines."""
        # 《…办法》的文号 asks about another document; 《关于…的提案》的编号 about the reply's own proposal
        titles = re.findall(r"《([^》]*)》", q.text)
        if titles and not all(re.search(r"(建议|提案|议案)$", t) for t in titles):
            return None
        intents = [line_re for ask_re, line_re in self._META_INTENTS if ask_re.search(q.text)]
        if not intents or self.section_chunks is None:
            return None
        doc_id = hits[0].chunk.doc_id
        chunks = self.section_chunks(doc_id, ["前言"]) + self.section_chunks(doc_id, ["结语"])
        picked: list[_Sent] = []
        for line_res in intents:
            found = _first_line(chunks, line_res if isinstance(line_res, tuple) else (line_res,))
            if found is not None and found[1] not in {p.text for p in picked}:
                c, line = found
                hit = next((h for h in hits if h.chunk.chunk_id == c.chunk_id), Hit(chunk=c, score=0.0, rank=len(hits) + 1))
                picked.append(_Sent(line, hit, 1.0, 1.0, True, len(picked)))
        if not picked:
            return None
        return self._compose([(None, picked)])

    # -------------------------------------------------------------- sentences
    def _sentences(self, q: Query, hits: list[Hit]) -> list[_Sent]:
        need_num = asks_number(q.text)
        near = _figure_near_head(q.text) if need_num else None
        unit = unit_check(q.text) if need_num else None

        months = [int(a or b) for a, b in _MONTH.findall(q.text)]
        when = re.compile("|".join(rf"(?<!\d){m}\s*月" for m in months)) if months else None

        def fits(t: str) -> float:  # the figure asked for: next to the thing asked about, in the unit and month asked
            return (0.25 if near and near.search(t) else 0.0) + (0.1 if unit and unit.search(t) else 0.0) + (0.1 if when and when.search(t) else 0.0)

        out: list[_Sent] = []
        order = 0
        for hit in hits:
            prior = 1.0 / hit.rank
            for para in hit.chunk.text.split("\n"):
                prev = ""
                for s in split_sentences(para):
                    s = s.strip()
                    if len(normalise(s)) < 4:
                        continue
                    s = _clauses_window(s, lambda t: self.coverage(q, t) + fits(t))
                    cov = self.coverage(q, s)
                    # a short sentence that goes on from the one before (截至目前,已为3户企业授信1.59亿元。) is
                    # judged and quoted with it: alone it does not say what it is about
                    if prev and len(s) <= 40 and len(prev) <= 160 and prev + s in para:  # still word for word
                        joint = self.coverage(q, prev + s)
                        if joint >= cov + 0.15:
                            s, cov = prev + s, joint
                    prev = s if len(s) <= 160 else ""
                    has_num = bool(_NUMBER.search(s))
                    score = cov + 0.12 * prior + (0.08 if need_num and has_num else 0.0) + fits(s)
                    out.append(_Sent(s, hit, score, cov, has_num, order))
                    order += 1
        return out

    def _dense_only_ok(self, q: Query, hit: Hit) -> bool:
        """Without key terms, only a question with real words (English) may rest on dense similarity alone:
        punctuation, emoji or a shell fragment scores ≥ 0.8 against almost anything with e5."""
        return bool(re.search(r"[A-Za-z]{3,}", q.text)) and hit.dense >= self.min_dense

    def _check(self, q: Query, part: str, s: _Sent) -> bool:
        """Does sentence s support an answer to `part` of the question?"""
        if not q.terms:  # nothing to match lexically (an English question outside the glossary): trust dense
            if not self._dense_only_ok(q, s.hit):
                return False
        elif s.coverage < (self.min_coverage_figure if unit_check(part) is not None else self.min_coverage):
            # a question asking for a figure of a stated kind (多少户, 多少元, 比例) has the unit checks below to
            # reject a wrong passage; others only have the words they share with it
            return False
        passage = normalise(s.hit.chunk.text).lower()
        for kind in _KIND_ASKED.findall(part):  # 有什么奖励: a passage without any 奖励 does not say which
            if not mentions(passage, kind):
                return False
        asked = re.sub(r"《[^》]*》", "", part)  # 《上海市2013-2015年…办法》 is a name, not the year asked about
        for nth in _ORDINAL.findall(asked):  # 第二批名录 is not answered by the 第一批
            if nth not in passage and cn_numbers_to_digits(nth) not in passage:
                return False
        for district in _DISTRICT.findall(asked):  # 黄埔区的配套奖励 is not answered by the city's award
            if district not in passage and _is_district(district):
                return False
        for year in _YEAR.findall(asked):
            if not _year_stated(year, passage, s.hit.chunk.date):
                return False
        if not re.search(r"[\u4e00-\u9fff]", part):  # English: "in 2022", "as of March 2024"
            for year in _YEAR_EN.findall(asked):
                if not _year_stated(year, passage, s.hit.chunk.date, english=True):
                    return False
        for month in (a or b for a, b in _MONTH.findall(asked)):  # 今年3月新增…: the passage speaks of March
            if not re.search(rf"(?<!\d){int(month)}\s*月", passage):
                return False
        for term in _named_concepts(q.terms, part):  # 创新型中小企业 is not 专精特新企业: the field's names must match
            if not mentions(passage, term) and not any(t in passage for t in domain_terms() if t in term and t != term):
                return False
        quoted = quoted_phrases(part)
        if quoted:  # “金小二”: the paragraph quoted from must name what the question quotes
            para = next((ln for ln in s.hit.chunk.text.split("\n") if s.text in ln), s.hit.chunk.text)
            if not all(mentions(normalise(para).lower(), name) for name in quoted):
                return False
            # a sentence about another named programme (“三贷中心”累计为…) does not answer about this one
            said = normalise(s.text).lower()
            if re.search(r"“[^”]{2,16}”", s.text) and not any(mentions(said, name) for name in quoted):
                return False
        heads = head_terms(part)
        for i, term in enumerate(heads):
            if i == len(heads) - 1 and self.known is not None and not any(self.known(e) for e in equivalents(term)):
                # the head noun in words no reply uses (借钱的开销, 开张福利): what is asked is then told by the unit
                # and the key terms; an unknown modifier (租房补贴) still has to be there
                continue
            # the thing asked about must be there (exactly or in the documents' wording in the passage, or most of
            # its characters in the sentence)
            if not mentions(passage, term) and sum(ch in s.text for ch in term) * 2 <= len(term):
                return False
        for asked, stated in _QUALIFIERS:  # 每家企业最高补贴多少: a total budget is no answer
            if asked.search(part) and not stated.search(s.text):
                return False
        if asks_number(part):
            need = unit_check(part)
            if need is not None and not need.search(s.text):
                return False
            if need is None and not s.has_number:
                return False
        return True

    def _pick(self, q: Query, part: str, hits: list[Hit], whole: list[_Sent]) -> _Sent | None:
        """The sentence answering `part`; `whole` is _sentences() for the whole question (reused when part is it)."""
        if part == q.text:
            sub, sents = q, whole
        else:
            low = normalise(f"{part} {expand_english(part)}").lower()  # an English part: its Chinese glossary terms
            # a part's own terms count twice, the rest of the question once: a later part leaves its subject to the
            # first one (…服务平台为多少家企业授信?授信金额是多少?)
            sub = replace(q, text=part, terms=[t for t in q.terms if t in low] + q.terms)
            sents = self._sentences(sub, hits)
        if not sents:
            return None
        ranked = sorted(sents, key=lambda s: (-s.score, s.order))
        best = ranked[0]
        if self._check(sub, part, best):
            return best
        # a sentence nearly as relevant that does state what is asked (the number, the year)
        for s in ranked[1:6]:
            if s.score >= best.score * 0.8 and self._check(sub, part, s):
                return s
        return None

    def _single(self, q: Query, hits: list[Hit]) -> Answer:
        top = hits[:3]
        parts = question_parts(q.text)
        every = self._sentences(q, top)
        chosen: list[_Sent] = []
        for part in parts:
            s = self._pick(q, part, top, every)
            if s is None:
                if len(parts) == 1:
                    return Answer(q.text, NOT_FOUND, True, [])
                continue
            if s.text not in {c.text for c in chosen}:
                chosen.append(s)
        if not chosen:
            return Answer(q.text, NOT_FOUND, True, [])
        if len(parts) == 1:
            # a second sentence when it is about as relevant (e.g. the figure follows the heading sentence)
            for s in sorted(every, key=lambda s: (-s.score, s.order))[:4]:
                if len(chosen) >= 2:
                    break
                if s.text != chosen[0].text and s.score >= chosen[0].score * 0.85 and self._check(q, q.text, s):
                    chosen.append(s)
        for c in [c for c in chosen if _is_item_title(c.text)]:  # 一是积极支持…用地保障工作。: what it says comes next
            nxt = _next_sentence(every, c)
            if nxt is not None and nxt.text not in {x.text for x in chosen}:
                chosen.append(nxt)
        chosen.sort(key=lambda s: (s.hit.rank, s.order))
        return self._compose([(None, chosen)])

    # -------------------------------------------------------------- whole sections
    def _section(self, q: Query, hits: list[Hit]) -> Answer | None:
        if self.section_chunks is None or not SECTION_QUESTION.search(q.text) or asks_number(q.text):
            return None
        found = best_heading([h.chunk.section_path for h in hits[:3]], q.text, self.section_match)
        if found is None:
            return None
        hit = hits[found[0]]
        prefix = hit.chunk.section_path[: found[1]]
        chunks = self.section_chunks(hit.chunk.doc_id, prefix)
        if not chunks:
            return None
        # one line per item of the section: each line of a chunk is an outline item (merged items keep their lines)
        domain = domain_terms()

        def salience(x: str) -> float:
            named = 0.5 if re.search(r"“[^”]{2,12}”", x) else 0.0  # a named programme or policy
            return (1.0 if _NUMBER.search(x) else 0.0) + 0.8 * sum(1 for t in domain if t in x) + named - 0.002 * len(x)

        items: list[_Sent] = []
        budget = 1000
        lines = [
            (c, [x for x in (y.strip() for y in split_sentences(line)) if len(normalise(x)) >= 4 and not _is_heading(x, prefix)])
            for c in chunks
            for line in c.text.split("\n")
        ]  # the section heading itself is no answer
        whole = sum(len(x) for _, sents in lines for x in sents) <= self.whole_section_chars
        for c, sents in lines:
            chit = next((h for h in hits if h.chunk.chunk_id == c.chunk_id), Hit(chunk=c, score=hit.score, rank=hit.rank))
            if not sents or budget <= 0:
                continue
            if whole:  # a short section is quoted whole: every measure it names
                picked = list(sents)
            else:  # an item's title sentence (三是健全…体系。), what it says next, and its most telling sentence
                picked = sents[:2] if _is_item_title(sents[0]) else sents[:1]
                rest = sorted((x for x in sents if x not in picked), key=lambda x: -salience(x))
                if rest and salience(rest[0]) > 0.5:
                    picked.append(rest[0])
            pieces = tuple(_head_clauses(x, 150) for x in sorted(picked, key=sents.index))
            text = "".join(p if p == x else p + "…" for p, x in zip(pieces, sorted(picked, key=sents.index)))  # … marks a cut
            budget -= len(text)
            items.append(_Sent(text, chit, 1.0, 1.0, bool(_NUMBER.search(text)), len(items), pieces))
        if not items:
            return None
        ans = self._compose([(None, [it]) for it in items])
        ans.answer = f"{hit.chunk.city or hit.chunk.doc_id}「{ITEM_MARKER.sub('', prefix[-1])}」:\n" + "\n".join("· " + ln for ln in ans.answer.split("\n"))
        return ans

    # -------------------------------------------------------------- comparative
    def _comparative(self, q: Query, hits: list[Hit]) -> Answer:
        by_doc: dict[str, list[Hit]] = {}
        for h in hits:
            by_doc.setdefault(h.chunk.doc_id, []).append(h)
        groups: list[tuple[str | None, list[_Sent]]] = []
        per_doc: list[tuple[str, list[Hit], list[_Sent]]] = []
        for doc_id, doc_hits in by_doc.items():
            sents = self._sentences(q, doc_hits)
            if sents:
                ranked = sorted(sents, key=lambda s: (-(s.score + (0.06 if s.has_number else 0.0)), s.order))
                per_doc.append((doc_id, doc_hits, ranked))
        # a document is in the list when a sentence of it names what the question quotes or one of the field's names
        # it uses (首贷, 免申即享), or says about as much of the question as the best document's best sentence
        bar = max(0.2, self.comparative_share * max((max(s.coverage for s in r) for _, _, r in per_doc), default=0.0))
        quoted = quoted_phrases(q.text)
        names = quoted or [t for t in q.terms if t in domain_terms()]
        for doc_id, doc_hits, ranked in per_doc:
            if quoted:  # the sentences naming it first
                ranked.sort(key=lambda s: not all(mentions(normalise(s.text).lower(), p) for p in quoted))
            best = ranked[0]
            named = any(n in normalise(s.text).lower() for s in ranked for n in names)
            if not (named and best.coverage >= 0.2) and max(s.coverage for s in ranked) < bar and not (not q.terms and self._dense_only_ok(q, best.hit)):
                continue
            chosen = [best]
            if _is_item_title(best.text):  # 一是举办第二届民营企业家日活动。: what the item says comes next
                nxt = _next_sentence(ranked, best)
                if nxt is not None:
                    chosen.append(nxt)
            # one more sentence nearly as relevant, a figure first (情况如何 / 进展如何 want the numbers)
            more = [s for s in ranked[1:4] if s not in chosen and s.score >= best.score * 0.7 and s.coverage >= 0.2]
            more.sort(key=lambda s: not s.has_number)
            chosen += more[:1]
            chosen.sort(key=lambda s: s.order)
            label = doc_hits[0].chunk.city or doc_id
            groups.append((label, chosen))
        if not groups:
            return Answer(q.text, NOT_FOUND, True, [])
        labels = [g[0] for g in groups]
        if len(set(labels)) < len(labels):  # two documents from the same city: name them apart
            groups = [(f"{lab}({g[1][0].hit.chunk.doc_id})" if labels.count(lab) > 1 else lab, g[1]) for lab, g in zip(labels, groups)]
        return self._compose(groups)

    # -------------------------------------------------------------- output
    def _compose(self, groups: list[tuple[str | None, list[_Sent]]]) -> Answer:
        cites: dict[str, Citation] = {}
        lines: list[str] = []
        for label, sents in groups:
            # a sentence quoted together with the one before it makes that one's own quote redundant
            sents = [x for x in sents if not any(y is not x and x.text in y.text and y.hit is x.hit for y in sents)]
            parts = []
            for s in sents:
                c = s.hit.chunk
                if c.chunk_id not in cites:
                    cites[c.chunk_id] = Citation(
                        n=len(cites) + 1, doc_id=c.doc_id, city=c.city, title=c.title, section=c.section, text=c.text,
                        score=round(s.hit.score, 4), issuer=c.issuer, date=c.date, quote="", chunk_id=c.chunk_id,
                    )
                cit = cites[c.chunk_id]
                for piece in s.pieces or (s.text,):  # the quote: verbatim pieces of the passage, one per line
                    if piece not in cit.quote.split("\n"):
                        cit.quote = f"{cit.quote}\n{piece}" if cit.quote else piece
                parts.append(f"{s.text}[{cites[c.chunk_id].n}]")
            body = "".join(parts)
            lines.append(f"{label}:{body}" if label else body)
        return Answer("", "\n".join(lines), False, list(cites.values()))
