"""Question analysis, done once: `analyze(question, lexicon) -> QuestionPlan`.

The plan says what kind of question it is (fact, section, comparative, meta), what each part of it asks
(key terms, head nouns, the kind of figure, maxima, dates, ordinals, districts, quoted names), the place and
year filters and the language. The retriever, the answerer, the LLM path and follow-up rewriting read it;
none of them parses the question again.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Protocol

from .english import is_english
from .places import _AMBIGUOUS_SHORT, _INSTITUTION_AFTER_EN, english_names, find_places, normalise_place, own_name, province_of, short_name
from .textproc import (
    LEVELS,
    MEASURE_UNITS,
    QUESTION_STOP,
    asks_for_section,
    asks_number,
    cn_numbers_to_digits,
    colloquial,
    domain_terms,
    equivalents,
    expand_english,
    figures,
    find_synonyms,
    normalise,
    quoted_phrases,
    to_simplified,
    tokenize,
    unit_kind,
    word_spans,
)
from .types import PlanPart, QuestionPlan

MAX_QUERY_CHARS = 2000  # the CLI and the chat refuse longer questions; other callers get them cut here
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")

COMPARATIVE = re.compile(
    r"(哪些|哪几个|哪几家|哪个)(城市|地方|地区|省份|地市|(?:省|市)(?!领导|委|级|长|政府|属|直|场|民|区|县|里|内|本级))|(哪些|哪几份|哪几个)(答复|回复|复函)|"
    r"(?<!出台了)(?<!制定了)(?<!印发了)(?<!发布了)(?<!出台)(?<!制定)(?<!印发)(?<!发布)(哪些|哪几份|哪几个)文件|各地|各市|各省|各城市|各个城市|多地|不同(城市|地区|地方)|对比|比较|异同|"
    r"[两二三四五几多](份|个|篇|件)(答复|回复|复函|文件)|[两二三四五六七八九十]地|"
    r"\bwhich (cities|provinces|places|regions)\b|\bcompare\b|\bcomparison\b|\beach (city|province)\b|\bin different (cities|places)\b|\bacross (cities|the replies|documents)\b",
    re.I,
)
# 分别是… asks each of several things: of several places (a comparison), or several facts about one reply (meta),
# or several figures of the one place it names (郑州对…分别给予多少奖励, 沟通过几次、分别是哪天: a fact question)
_SEVERAL = re.compile(r"分别(是|有)")
_RESPECTIVELY = re.compile(r"分别|各自")  # 两份答复的索引号分别是什么: each reply's, not the first's
_YEAR_FILTER = re.compile(r"((?:19|20)\d{2})\s*年(?:的|度)?(?:答复|回复|建议|提案|文件)")
_YEAR = re.compile(r"((?:19|20)\d{2})\s*年")
_YEAR_EN = re.compile(r"\b((?:19|20)\d{2})\b")
_MONTH = re.compile(r"(?<![\d年])(?:\d{1,2}\s*[-—~至到]\s*)?(\d{1,2})\s*月|(?<=年)(\d{1,2})\s*月")
_ORDINAL = re.compile(r"第[一二三四五六七八九十\d]+[批届版期]")
# a district or county named in the question (黄埔区); the gazetteer stops at county-level cities
_DISTRICT = re.compile(r"([\u4e00-\u9fff]{2})(?:区|县)(?![\u4e00-\u9fff]?(?:企业|内|外|域))")
# 专区, 厂区, 园区…: a common word ending in 区 is no district (its first character before 区); 津市区, 辽宁省县…
_COMMON_QU = set("专社景学营禁误盲雷展城园片湾港山郊老辖市地新街厂矿林牧灾赛校住小分特试警战库疫省")
_NOT_A_DISTRICT = {"自贸", "园区", "城区", "地区", "市区", "辖区", "社区", "开发", "新区", "示范", "试验", "集聚", "功能", "合作", "港区", "景区", "片区", "湾区", "老区", "山区", "郊区", "全区", "各区", "本区", "该区", "城乡"}
_KIND_ASKED = re.compile(r"(?:什么|哪些|何种|哪种|哪类)(奖励|补贴|补助|优惠|资助|待遇|奖补|补偿)")
# what a figure is asked for: a maximum (最高可补贴多少), a rate per unit (每家/每人/每月)
QUALIFIERS_ASKED = {
    "maximum": re.compile(r"最高|最多|上限|封顶|at most|maximum", re.I),
    "per_unit": re.compile(r"每(家|户|个|人|名|位|年|月|季度|次|项)|per (company|enterprise|person|year|month)|\beach\b", re.I),
}
QWORD = re.compile(r"多少|几|哪|什么|何|是否|怎样|如何|谁|how|what|which|when|who", re.I)
# a question about the tool itself (你是谁, 你用的是什么模型, who are you), not about the replies
ABOUT_ASSISTANT = re.compile(
    r"^\s*(?:你|您)(?:好|是谁|是什么|叫什么|能做什么|会做什么|能干什么|是不是|是机器人|是人)|(?:你|您)们?(?:用的?|基于|是)(?:是)?(?:什么|哪个|哪种)(?:大)?模型|"
    r"(?:你|您)是(?:谁|什么|人|机器人|ai|AI|chatgpt)|\bwho are you\b|\bwhat (?:model|llm|ai) (?:are you|do you use|is this)\b|\bare you (?:a|an) (?:bot|robot|ai|human)\b", re.I)
# the period a figure is asked for: the whole year (2024年全年), or a part of it (上半年, 一季度, 前三季度)
PERIODS_ASKED = re.compile(r"全年|上半年|下半年|前[一二三]季度|第?[一二三四]季度|\b(?:whole|full) year\b|\bfirst half\b|\bsecond half\b", re.I)
# a flow asked (新增了多少家, 新认定几家): the sentence must state an increase, not a total reached (截至年底达到9家)
_FLOW_ASKED = re.compile(r"新(?:增|认定|培育|引进|设立|登记|注册|上市)(?!的)[^，。?？,;；的]{0,16}(?:多少|几)|\bhow many new\b|\bnewly\b", re.I)
# several things asked (哪些政策措施, 哪几个方面, what measures): the clause naming several is the answer
_LIST_ASKED = re.compile(r"哪些|哪几(?!年|月|天)|有什么(?:政策|措施|举措|文件|做法)|\bwhat (?:measures|policies|documents|steps)\b|\bwhich (?:measures|policies|documents)\b", re.I)
# what a whole reply does (做了哪些工作, 采取了哪些措施, 针对哪些建议作了回应): its outline may answer it
_MEASURES_ASKED = re.compile(r"(?:哪些|哪几[个项条]?|什么)(?:主要|具体|重点)?(?:工作|措施|举措|方面|进展|成效|做法|行动|办法|回应)|(?:做|采取|开展|作)了?哪些|针对哪些|"
                             r"\bwhat (?:measures|steps|actions|work)\b", re.I)
# a question about a reply as a whole (答复王明委员…的提案时, 在…建议的答复中)
_ABOUT_REPLY = re.compile(r"(?:提案|建议|议案)[》”]?(?:时|中|里|的答复|答复|的回复|的办理)|(?:答复|回复|办理)[^?？，,]{0,40}(?:提案|建议|议案)[》”]?时|"
                          r"\b(?:when|in) (?:answering|replying to|handling)\b", re.I)
# a name asked (叫什么名字, 名称是什么): the answer is a name, not a count
_NAME_ASKED = re.compile(r"叫什么|什么名|名称|名字|何名|(?:分别)?是?哪几家(?![^?？，,]{0,12}(?:多少|几))|\bwhat is (?:it|the \w+) called\b|\bwhat (?:is|was) the name\b|\bnamed what\b", re.I)
# the words of an English quantity question's head (how much registered capital … -> registered capital)
_EN_HEAD = re.compile(
    r"\b(?:how (?:much|many)|what (?:is|was|are|were) the)\s+(.*?)(?=\s+(?:does|did|do|is|are|was|were|has|have|had|will|can|could|would|"
    r"should|of|in|for|from|to|by|at|on|that|which|under|per|each|given|offered|provided|and (?:how|what|which|when|who))\b|[?,;]|$)", re.I)
_EN_GENERIC = set("""money funds funding amount amounts sum total number numbers figure value size items things times people persons
    companies firms enterprises businesses new the a an of more most""".split())
_GENERIC_HEAD = set(
    """每个 每家 每户 每名 每位 每项 每次 每月 每年 每人 一共 总共 分别 各 钱 元 家 户 个 人 名 项 次 场 条 批 套 本 册 种 件 企业 公司 资金 金额 数量 规模 比例 标准
    情况 时间 日期 年 月 天 是 多 有 给 给予 提供 发放 获得 达到 累计 共 一共 总共 目前 已经 能 可以 可 将
    拿到 得到 享受 取得 收到 完成 实现 办理 申请 申报 部分 方面 方式 办法 机构 单位 部门""".split()
)
# questions about the reply itself (who it answers, its numbers, its date): answered from DocMeta and its lines
META_INTENTS: dict[str, re.Pattern[str]] = {
    "addressee": re.compile(
        r"(哪位|哪个|哪些|哪几位|谁).{0,6}(代表|委员)|针对.{0,8}(谁|哪位)|答复(对象|给谁)|向谁答复|(答复|回复)(的是)?谁(?!.{0,3}(部门|单位))|(谁|哪位|哪几位|哪些人)提出|提案人|建议人|提出人|(代表|委员)是谁|addressed to|"
        r"which ([\w-]+ )?(deputy|deputies|delegates?|members?)|who (submitted|proposed|raised|made|put forward)", re.I),
    "number": re.compile(r"(建议|提案|议案)》?[^《》]{0,8}(编号|第几号)|第几号(建议|提案|议案)|编号[^《》]{0,6}(建议|提案)|建议号|提案号|number of the (proposal|suggestion)|"
                         r"\b(proposal|suggestion|motion) number\b", re.I),
    # the reply's own 文号; "the document number of Guangzhou's measures …" asks another document's (a unit, docno)
    "doc_number": re.compile(r"(答复|复函|回复)[^?？]{0,40}文号|文号[^《》]{0,6}(答复|复函)|发文字号|发文号|"
                             r"\b(reply|response|answer|letter)('s)? document number|\bdocument number of (the|this|its) (reply|response|answer|letter)\b|"
                             r"\bdocument number of [^?]{0,80}?\b(reply|response|answer|letter)\b", re.I),
    "date": re.compile(
        r"落款|答复日期|发文日期|生成日期|发布日期|成文日期|哪天(答复|发布|提交|提出)|落款日期|签发|何时(答复|发布|回复)|什么时候(答复|发布|回复|印发|公布|作出|做出)|(答复|回复|复函)[^?？，,]{0,6}(什么时候|何时|哪天|哪一天|日期|时间)(?!.{0,6}(多少|几))|"
        r"(发布|答复|回复|印发|公布)(时间|日期)是?(哪天|哪一天|什么时候|何时)|"
        r"date of the reply|when (was|did) (the|this) (reply|response|answer)|when was it (issued|published|replied)|"
        r"\bwhen was\b[^?]{0,120}\b(reply|response|answer|letter)\b[^?]{0,120}\b(published|issued|released|dated|sent|made)\b", re.I),
    # the proposal's own title (建议的主题是什么 -> 《关于…的建议》), and who signed it with the addressee (联名)
    "topic": re.compile(r"(建议|提案|议案)的?(主题|题目|标题|名称)|关于什么的(建议|提案|议案)|(?<!在)(什么|哪份|哪一份|哪个)(建议|提案|议案)(?!案|[^?？]{0,6}(多少|几|中|里))|"
                        r"what (was|is) the (proposal|suggestion|motion) about|title of the (proposal|suggestion|motion)", re.I),
    "cosigners": re.compile(r"联名|共同提出|还有(哪几位|哪些|谁)[^?？]{0,6}(代表|委员)|who (else|co-?signed)|co-?signers?", re.I),
    # the departments the reply was studied with (经会同市科技局…研究答复, 结合…的意见): named in its opening lines
    "consulted": re.compile(r"会同了?(哪些|哪几个|哪个|什么)|(与|和|同)(哪些|哪几个|哪个)(部门|单位|机构)[^?？]{0,6}(共同|一起|联合)?(研究|商议|办理|答复)|"
                            r"(征求|结合|吸收|综合)了?(哪些|哪几个|哪个)[^?？]{0,16}意见|会同或(征求|结合|综合|吸收)了?(哪些|哪几个|哪个)|"
                            r"\bwhich (bodies|departments|agencies|units|offices)\b[^?]{0,80}\b(consult|consulted|studied with|worked with|together with|combine|combined)\b|"
                            r"\b(consult|consulted|studied (it )?with|worked with|together with)\b[^?]{0,40}\bwhich\b|\bopinions of which\b", re.I),
    # the reply's category as the portals file it (答复类别:B类; A类 solved or adopted, B类 being solved, C类 for reference)
    "category": re.compile(r"(哪一?类|什么类|几类|哪个类别|什么类别)的?(答复|回复|办理结果)|(答复|回复|办理)的?类别|[ABC]类还是[ABC]类|"
                           r"\b(reply|response|answer)('s)? (category|class)\b|\bcategory of (the|this|its) (reply|response|answer)\b|\bclassified as\b", re.I),
    "issuer": re.compile(r"(哪个|哪一个|什么)(部门|单位|机关)(答复|回复|作出|办理)|由(谁|哪个部门|哪个单位)(答复|回复|办理)|(答复|回复)(部门|单位|机关)是|which (department|agency|office|bureau) (replied|answered|issued)", re.I),
}


class Lexicon(Protocol):
    """What analysis needs to know about the index: the places it has replies for, and whether its passages
    use a word (a place without a reply of its own may still be written about: 宜宾 in 四川省's reply)."""

    def cities(self) -> list[str]: ...

    def known(self, word: str) -> bool: ...


# English function words, never a key term even where a reply quotes English (the, and, of …)
_EN_STOP = frozenset("""the and for with from that this what which when where who whom how much many does did was were are
    has have had its their his her into about than then also more most such been being will would could should can may
    of in on at by to as or an is be it""".split())


# a deputy or member named in a question (答复林平代表…, 钟文新委员的提案): the name before the title
PROPOSER = re.compile(r"(?:答复|回复|和|与|及|、|^)([\u4e00-\u9fff]{2,3}?)(?<!人大)(?<!政协)(?:代表|委员)(?!会)")


def english_people(question: str, lexicon: Lexicon) -> dict[str, str]:
    """The deputies and members the indexed replies answer (the lexicon's `people()`: pinyin -> name) that an
    English question names (CPPCC member Yue Zhaoyang): their pinyin as written, and their Chinese (岳朝阳)."""
    people = getattr(lexicon, "people", None)
    if people is None:
        return {}
    low = re.sub(r"[^a-z]+", " ", question.lower())
    return {en: zh for en, zh in people().items() if re.search(rf"\b{re.escape(en)}\b", low)}


def clean_question(text: str) -> str:
    """The question without control characters or lone surrogates (the embedder cannot encode them),
    at most MAX_QUERY_CHARS long (the embedder's time grows with the length)."""
    return _UNSAFE.sub(" ", text or "")[:MAX_QUERY_CHARS]


# 哪个区, 每个县, 该区, 全区: a question word or a determiner before 区/县 names no district
_NOT_A_NAME = re.compile(r"[哪几什每各该本这那全某此其个]")


def districts_named(text: str) -> list[str]:
    """The districts and counties a text names (黄埔 of 黄埔区): a name that starts a word of its own (有没有从区里
    names no district 有从), not a common word nor a question word."""
    starts = {a for _, a, _ in word_spans(text)}
    return [m.group(1) for m in _DISTRICT.finditer(text) if m.start(1) in starts and is_district(m.group(1))]


def is_district(name: str) -> bool:
    """Is the name before 区/县 (黄埔 of 黄埔区) a district's, not part of a common word (专区, 自贸区, 市区) nor a
    question word or determiner (哪个区, 每个县)?"""
    return name not in _NOT_A_DISTRICT and name[-1] not in _COMMON_QU and not _NOT_A_NAME.search(name)


def _base(city: str) -> str:
    """An indexed place as a name: 秭归县(湖北宜昌) -> 秭归县."""
    return re.split(r"[(（]", city, maxsplit=1)[0].strip()


def place_filter(question: str, indexed: set[str]) -> tuple[list[str], list[str]]:
    """(the indexed places the question names, the places it names that have no reply).

    A gazetteer place matches the indexed places of that name or inside it (威海市 -> 威海市环翠区); an indexed
    place below the gazetteer's level (环翠区, 秭归县) matches by its own name or its name without 区/县/市."""
    known: list[str] = []
    unknown: list[str] = []
    for full in dict.fromkeys(full for full, _, _ in find_places(question)):
        inside = sorted(c for c in indexed if c == full or _base(c).startswith(full))
        (known.extend(inside) if inside else unknown.append(full))
    latin = bool(re.search(r"[A-Z][a-z]", question))
    for c in sorted(indexed):
        base = _base(c)
        short = re.sub(r"(市|县|区|旗)$", "", base)
        own = _own_name(base)  # 丹东市元宝区 -> 元宝区: a district is named without its city too
        if base in question or (len(short) >= 2 and short != base and short in question and (
                short not in _AMBIGUOUS_SHORT or _after_its_province(short, base, question))) or (own != base and own in question):
            known.append(c)
        elif latin and c not in known and _names_in_english(base, question):  # Zigui County, Huancui District
            known.append(c)
    known = list(dict.fromkeys(known))
    return known, ([] if known else unknown)


def _after_its_province(short: str, place: str, question: str) -> bool:
    """A short name that is also an everyday word (明光, 长春) names the place when its province comes right
    before it (安徽明光, 吉林长春)."""
    province = province_of(place)
    return bool(province) and any(f"{p}{short}" in question for p in {province, short_name(province)})


def _outside_names(text: str, edit) -> str:
    """`edit` applied to the text outside quoted names and titles (“@沈阳营商”, 《沈阳市…办法》 keep their places)."""
    out, last = [], 0
    for m in _NAME_SPAN.finditer(text):
        out += [edit(text[last:m.start()]), m.group(0)]
        last = m.end()
    return "".join(out + [edit(text[last:])])


def _own_name(place: str) -> str:
    """A district's or county's own name after the larger place it is in (丹东市元宝区 -> 元宝区), with its level
    (rag.places.own_name); any other place itself (秭归县, 沈阳市)."""
    return own_name(place) if re.search(r"(区|县|旗)$", place) else place


def _names_in_english(place: str, question: str) -> bool:
    """An indexed place is named in an English question by its English name (rag.places.english_names), as a
    capitalised whole word (Nankai, not Nankai University)."""
    for name in english_names(place):
        for m in re.finditer(rf"\b{re.escape(name)}(?:'s)?\b", question):
            if not _INSTITUTION_AFTER_EN.match(question[m.end():]):
                return True
    return False


def named_places(question: str) -> list[str]:
    """The places a question names side by side (广州和信阳, 岳阳、常德、沈阳): each gazetteer place once, without
    one that holds another named place (辽宁省沈阳市 names one place, 安徽明光市 one)."""
    spans = find_places(question)

    def qualifies(p: str, start: int, end: int) -> bool:  # 辽宁省|沈阳市, 岳阳|湖南工程机械…: the larger place next to one inside it
        return any(q != p and (a == end or b == start) and (province_of(q) == p or q.startswith(p))
                   for q, a, b in spans)

    return list(dict.fromkeys(full for full, start, end in spans if not qualifies(full, start, end)))


def _counties_named_apart(question: str, cities: list[str]) -> list[str]:
    """Indexed counties and districts below the gazetteer (岳阳县, 环翠区) the question writes in full and on their
    own (岳阳市和下辖的岳阳县), not right after the place they are in (沈阳市和平区, 湖南岳阳县)."""
    out = []
    for c in cities:
        at = question.find(c)
        if at < 0 or not re.search(r"[县区旗]$", c):
            continue
        if any(a == 0 and b < len(c) and re.search(r"[省市州盟]$", c[:b]) for _, a, b in find_places(c)):  # 威海市环翠区: one place
            continue
        if any(b == at for _, _, b in find_places(question[:at])):  # 湖南岳阳县: right after the place it is in
            continue
        out.append(c)
    return out


def question_parts(question: str) -> list[str]:
    """'…发布了多少融资需求?累计放款多少?' -> two parts, each with its own question word."""
    pieces = [p for p in re.split(r"[?？;；]|[,，](?=[^,，]*(?:多少|几|哪|什么|是否))|,?\s+and\s+(?=(?:to\s+|for\s+|in\s+)?(?:how|what|which|when|who)\b)", question, flags=re.I) if p and p.strip()]
    # 不管企业在哪个区, …: a concessive clause's question word asks nothing
    parts = [p for p in pieces if QWORD.search(_CONCESSIVE.sub("", p))]
    return parts if len(parts) >= 2 else [question]


_CONCESSIVE = re.compile(r"(?:不管|无论|不论|不拘)[^,，。;；?？]*")


def word_window(run: str, n: int, end: bool) -> str:
    """The last (end=True) or first `n` characters of a run of Chinese text, widened to whole words: the window
    next to 多少 never cuts a word (独角兽企业多少家 -> 独角兽企业, not 角兽企业)."""
    if len(run) <= n:
        return run
    cut = len(run) - n if end else n
    for _, a, b in word_spans(run):
        if a < cut < b:
            cut = a if end else b
            break
    return run[cut:] if end else run[:cut]


def period_asked(part: str) -> str:
    """The period a figure is asked for, in the documents' words (全年, 上半年, 一季度; "full year" -> 全年)."""
    m = PERIODS_ASKED.search(part)
    if not m:
        return ""
    said = m.group(0).lower()
    english = {"whole year": "全年", "full year": "全年", "first half": "上半年", "second half": "下半年"}
    return english.get(said, said.lstrip("第"))


def english_head(part: str) -> str:
    """What an English quantity question counts or measures (How much registered capital does … -> registered
    capital); "" when it names nothing specific (how much money, how many companies)."""
    m = _EN_HEAD.search(part)
    if not m:
        return ""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", m.group(1))
    if not words or words[0].lower() in {"did", "does", "do", "is", "was", "are", "were"}:
        return ""
    return m.group(1).strip() if any(w.lower() not in _EN_GENERIC for w in words) else ""


# the words after a date question word that are no event (哪一年正式获批, 从哪一年开始实施: 获批, 实施)
_EVENT_FILLER = {"正式", "开始", "起", "首次", "第一次", "率先", "左右", "前后", "以来"}
_WHEN_WORD = re.compile(r"哪一年|哪年|哪天|哪一天|何时|什么时候|什么时间|几月|哪个月")


# who holds a role or leads a thing (组长由谁担任, 由哪所高校牵头建设, 办公室设在哪个部门): the verb that names the holder
_HOLDER_ASKED = re.compile(r"由(?:谁|哪位|哪个|哪些|哪几位|哪几个|哪所|哪家|哪一?个)[^?？，,。]{0,8}?(担任|牵头|负责|主持|兼任|领衔)|"
                           r"(担任|兼任)[^?？，,。]{0,6}?(?:的是谁|是谁|的是哪)|(设在)(?:哪|什么)")


def holder_asked(part: str) -> str:
    """The verb a who-holds-it question needs the answer to say (组长由谁担任 -> 担任, 由哪所高校牵头 -> 牵头,
    设在哪个部门 -> 设在); "" for any other question."""
    m = _HOLDER_ASKED.search(part)
    return next((g for g in m.groups() if g), "") if m else ""


def event_asked(part: str) -> str:
    """What a date is asked of (是哪一年成立的 -> 成立, 是什么时候印发的 -> 印发, 从哪一年开始实施 -> 实施): the first
    word after the question word, fillers aside; "" when none follows."""
    m = _WHEN_WORD.search(part)
    if not m:
        return ""
    run = re.match(r"[\u4e00-\u9fff]*", part[m.end():]).group(0)
    for t in tokenize(run, for_search=False):
        for f in _EVENT_FILLER:  # 开始运行 -> 运行
            if t.startswith(f) and len(t) >= len(f) + 2:
                t = t[len(f):]
        if t in _EVENT_FILLER or len(t) < 2:
            continue
        return t if not QWORD.search(t) else ""
    return ""


_EN_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])")


def figure_numbers(question: str) -> set[str]:
    """The numbers of the figures a question states (参会的5家银行 -> 5; "the 320-plus leading enterprises" -> 320):
    a Chinese question's amounts and counts, an English one's numbers that are no years."""
    if re.search(r"[A-Za-z]{3,}", question) and not re.search(r"[\u4e00-\u9fff]{4,}", question):
        return {m.group(1) for m in _EN_NUMBER.finditer(question) if not re.fullmatch(r"(?:19|20)\d{2}", m.group(1))}
    return {n for n, _, _ in figures(question)}


# a yes/no question about a figure (是否…2500元?, 是不是…): a passage stating another figure answers it
_CONFIRMS = re.compile(r"是否|是不是|有没有|对不对|对吗|吗\s*[?？]?\s*$|\b(?:is|are|does|do|did|was|were) (?:it|there|the|they)\b", re.I)


def _done_before(run: str) -> str:
    """The verb a run of text ends in with its aspect (提升到了, 报告了 -> 提升, 报告), or ""."""
    if not re.search(r"[了过着]$", run):
        return ""
    toks = tokenize(run, for_search=False)
    while toks and (toks[-1] in ("了", "过", "着", "到", "至") or len(toks[-1]) == 1):
        toks.pop()
    return toks[-1] if toks and len(toks[-1]) >= 2 else ""


def near_terms(part: str) -> tuple[str, ...]:
    """What is done before 多少 and to what (比重提升到了多少 -> 比重, 提升): a figure written next to them is
    likelier the one asked (提升到68.1%); a verb and its object so far from 多少 are nothing a passage must name."""
    m = re.search(r"(多少|(?<![哪这近前后好])几)", part)
    if not m:
        return ()
    run = re.search(r"[\u4e00-\u9fff]*$", part[: m.start()]).group(0)
    verb = _done_before(run)
    if not verb:
        return ()
    before = [t for t in tokenize(word_window(run[: run.rfind(verb)], 4, end=True), for_search=False)
              if len(t) >= 2 and t not in _GENERIC_HEAD and t not in QUESTION_STOP and not QWORD.search(t)]
    return (*before[-1:], verb)


@lru_cache(maxsize=512)
def head_terms(part: str) -> tuple[str, ...]:
    """The words a quantity question is about: next to 多少/几/是多少 (多少购房补贴 -> 购房, 补贴)."""
    m = re.search(r"(?:是|有|为|达到?|给予?|提供|发放|奖励|补贴)?(多少|(?<![哪这近前后好])几)", part)
    if not m:
        return ()
    # 多少人去参加, 多少亿元: 人 and 亿元 are the unit, not what is asked about
    unit = re.match(rf"(?:{MEASURE_UNITS}|人次|[万亿]?(?:美元|元)|[万亿]|[个家户人名位项次场条批期套所份种件])", part[m.end():])
    # 多少家“小巨人”企业: the quotation marks are inside the thing asked about
    rest = re.sub(r"[“”\"「」]", "", part[m.end() + (unit.end() if unit else 0):])
    after = word_window(re.match(r"[\u4e00-\u9fff]*", rest).group(0), 6, end=False)
    run = re.search(r"[\u4e00-\u9fff]*$", part[: m.start()]).group(0)
    if _done_before(run):  # 比重提升到了多少 / 各报告了多少: no head next to it to check (rag.plan.near_terms scores them)
        run = ""
    before = word_window(run, 4, end=True)

    def words(window: str) -> list[str]:  # a thesaurus phrase stays whole (利息补贴, not 利息 + 补贴)
        phrases = [p for p, _ in find_synonyms(window)]
        toks = [t for t in tokenize(window, for_search=False) if not any(t != p and t in p for p in phrases)]
        toks += [p for p in phrases if p not in toks]
        toks.sort(key=lambda t: window.find(t))
        places = {window[a:b] for _, a, b in find_places(window)}  # 湖南有多少家: the place is a filter, not a head
        return [t for t in toks if t not in _GENERIC_HEAD and t not in QUESTION_STOP and t not in places and len(t) >= 2 and not QWORD.search(t)]

    if after and unit:  # 多少人下沉蹲点 / 多少家企业授信: after the unit comes what they did, told by its last word
        return tuple(words(after)[-1:])
    if after:  # 多少购房补贴: the words after it; 多少企业: a generic word, nothing to check
        return tuple(words(after)[:2])
    return tuple(words(before)[-1:])  # …奖励多少 / 注册资本是多少 / 出口额是多少亿元: the word before it


def _named_concepts(terms: list[str], part: str) -> list[str]:
    """The domain dictionary's names (首贷户, 创新型中小企业…) among the key terms of `part`, or written in another
    of their thesaurus forms (北京证券交易所 for 北交所), longest only."""
    low = normalise(part).lower()
    # (a colloquial form of one, 小公司 for 小微企业, draws no such line: the asker did not choose the field's name)
    names = [t for t in terms if t in low and (t in domain_terms() or any(e in domain_terms() for e in equivalents(t)) and not colloquial(t))]
    return [t for t in names if not any(t != o and t in o for o in names)]


def meta_intents(question: str) -> list[str]:
    """Which facts about the reply itself the question asks (addressee, number, doc_number, date, issuer, the
    proposal's topic, its cosigners).
    《…办法》的文号 asks about another document; 《关于…的提案》的编号 about the reply's own proposal."""
    titles = re.findall(r"《([^》]*)》", question)
    if titles and not all(re.search(r"(建议|提案|议案)$", t) for t in titles):
        return []
    found = [name for name, rx in META_INTENTS.items() if rx.search(question)]
    if "consulted" in found and re.search(r"“[^”]{2,}”", question):  # 会同哪些部门推进“红顶中介”整治: a work's partners
        found.remove("consulted")
    return found


def grounding_terms(terms: list[str]) -> list[str]:
    """The key terms that say what a question is about: a year or a bare number alone (Who won … in 2022?)
    grounds no answer."""
    return [t for t in terms if not re.fullmatch(r"[\d.]+|年|月|日", t)]


_LONG_STOP = sorted((w for w in QUESTION_STOP if len(w) >= 3), key=len, reverse=True)


def _inside_stop(term: str, topic: str) -> bool:
    """Is every occurrence of `term` part of a question word (不能 of 能不能, 没有 of 有没有)? Such a sub-word of
    cut_for_search asks, it names nothing."""
    spans = [(m.start(), m.end()) for w in _LONG_STOP if term in w and term != w for m in re.finditer(re.escape(w), topic)]
    if not spans:
        return False
    return all(any(a <= m.start() and m.end() <= b for a, b in spans) for m in re.finditer(re.escape(term), topic))


def _key_terms(topic: str) -> tuple[list[str], dict[str, tuple[str, ...]], str]:
    terms = tokenize(topic, for_search=True)
    # everyday words with a thesaurus entry become one term each (头一回, not 一回); the documents' wording
    # of them goes to BM25 and counts as the word in passages
    phrases = [(p, g) for p, g in find_synonyms(topic) if p not in QUESTION_STOP]
    colloquial = [p for p, g in phrases if p != g[0]]
    terms = [t for t in terms if not any(t != p and t in p for p in colloquial)] + [p for p, _ in phrases]
    terms = [t for t in dict.fromkeys(terms) if t not in QUESTION_STOP and not re.fullmatch(r"[a-z]+", t) and not _inside_stop(t, topic)]
    alts = {t: e for t in terms if len(e := equivalents(t)) > 1}
    digits = cn_numbers_to_digits(topic)
    official = " ".join(dict.fromkeys([g[0] for p, g in phrases if p != g[0]] + ([digits] if digits != topic else [])))
    return terms, alts, official


# a quoted name or title: the places in it are part of the name, not a filter to drop from the topic
_NAME_SPAN = re.compile(r"“[^”]{1,30}”|\"[^\"]{1,30}\"|《[^》]{1,60}》")
_PROPOSAL_TITLE = re.compile(r"关于[^,，。;；?？《》“”]{2,40}?的?(建议|提案|议案)(?!中|里)")


# the clauses of a question that say which reply is meant, not what is asked of it: whom it answers (答复徐兵、陈志奇
# 委员时, 在孙建伟代表的建议的答复中), its number (第JY20250126号建议, suggestion JY20250126), who issued it (市发展改革委答复…)
FRAME = re.compile(
    r"(?:答复|回复|办理)[^?？，,。；;]{0,40}?(?:代表|委员)(?:等\d*人)?(?:(?:提出)?的[^?？，,。；;]{0,60}?(?:提案|建议|议案))?(?:时|的函|中)?|"
    r"[^?？，,。；;]{0,12}?(?:代表|委员)(?:等\d*人)?(?:提出)?的[^?？，,。；;]{0,60}?(?:提案|建议|议案)(?:的答复|的回复)?(?:中|时|里)?|"
    r"第?\s*[A-Za-z]*\d{3,}\s*号(?:提案|建议|议案)?|"
    r"[\u4e00-\u9fff]{2,14}?(?:局|委|厅|办|部|政府)(?=在?(?:答复|回复))|"
    r"\b(?:suggestion|proposal|motion)s?\s+(?:No\.?\s*)?[A-Za-z]*\d{3,}\b", re.I)


def frame_terms(text: str, terms: list[str]) -> list[str]:
    """The key terms written only in the clauses that say which reply is meant (FRAME); none when the question
    asks nothing else (答复王明委员的提案时?)."""
    spans = [m.span() for m in FRAME.finditer(text)]
    if not spans:
        return []
    inside = " ".join(text[a:b] for a, b in spans).lower()
    rest = text.lower()
    for a, b in reversed(spans):
        rest = rest[:a] + " " + rest[b:]
    frame = [t for t in terms if t in inside and t not in rest]
    return frame if len(frame) < len(terms) else []


# how a clause asks (QWORD, and the yes/no forms: 能不能同时办, 是否, 有没有, …吗)
_ASKING = re.compile(rf"{QWORD.pattern}|怎么|能不能|能否|可不可以|可否|有没有|是不是|吗[?？]?$", re.I)


def asking_clauses(part: str) -> str:
    """The clauses of a question that ask (供地和项目审批能不能同时办), when others only set the scene (在辽宁的开发区
    拿到工业用地的企业想尽快动工); "" when every clause asks or the question is one clause."""
    clauses = [c for c in re.split(r"[,，;；]", part) if c.strip()]
    if len(clauses) < 2 or is_english(part):
        return ""
    asking = [c for c in clauses if _ASKING.search(c)]
    return "，".join(asking) if asking and len(asking) < len(clauses) else ""


def analyze_part(part: str, plan: QuestionPlan) -> PlanPart:
    """The plan of one asked thing; its own terms count twice, the rest of the question once (a later part
    leaves its subject to the first one: …服务平台为多少家企业授信?授信金额是多少?)."""
    if part == plan.text:
        terms = list(plan.terms)
    else:
        low = normalise(f"{part} {expand_english(part)}").lower()
        terms = [t for t in plan.terms if t in low] + plan.terms
    # 郑州重新理权责清单时,那些交给中介机构就能办的事是怎么处理的?: the clause that asks says what the sentence must
    # be about, the clauses before it where to look; its terms count once more
    focus = asking_clauses(part)
    if focus:
        low = normalise(f"{focus} {expand_english(focus)}").lower()
        terms = [t for t in plan.terms if t in low] + terms
    if plan.frame and not plan.meta:  # which reply is meant is the retriever's to find, not the sentence's to say
        terms = [t for t in terms if t not in plan.frame] or terms
    # 《上海市2013-2015年…办法》 and 关于壮大…企业规模的建议 are names, not the year or the figure asked about
    asked = _PROPOSAL_TITLE.sub("", re.sub(r"《[^》]*》", "", part))
    english = is_english(part)
    number = asks_number(asked)
    head = english_head(asked) if english else ""
    return PlanPart(
        text=part,
        terms=terms,
        alts=plan.alts,
        heads=list(head_terms(part)),
        near=list(near_terms(part)),
        asks_number=number,
        unit=unit_kind(asked) if number else "",
        qualifiers=[name for name, rx in QUALIFIERS_ASKED.items() if rx.search(part)],
        years=_YEAR.findall(asked),
        years_en=_YEAR_EN.findall(asked) if english else [],
        months=[int(a or b) for a, b in _MONTH.findall(asked)],
        ordinals=_ORDINAL.findall(asked),
        districts=districts_named(asked),
        levels=list(dict.fromkeys(LEVELS.findall(asked))),
        quoted=quoted_phrases(part),
        kinds=_KIND_ASKED.findall(part),
        concepts=_named_concepts(plan.terms, part),
        meta=meta_intents(part),
        period=period_asked(asked),
        event=event_asked(asked) if number and unit_kind(asked) == "date" else "",
        holder=holder_asked(asked),
        figures=sorted(figures(part)),
        figure_numbers=sorted(figure_numbers(part)),
        confirms=bool(_CONFIRMS.search(part)),
        flow=bool(_FLOW_ASKED.search(asked)),
        asks_name=bool(_NAME_ASKED.search(part)),
        asks_list=not number and bool(_LIST_ASKED.search(part)),
        asks_measures=not number and bool(_MEASURES_ASKED.search(part)),
        en_head=head,
        en_head_zh=expand_english(head).split() if head else [],
        english=english,
    )


def analyze(question: str, lexicon: Lexicon, cities: list[str] | None = None, years: list[str] | None = None) -> QuestionPlan:
    """The question's plan. Traditional characters are read as simplified (a question in either finds both)."""
    text = clean_question(question).strip()
    simple = to_simplified(text)
    plan = QuestionPlan(text=text)
    written: list[str] = []
    plan.language = "en" if is_english(text) else "zh"  # "…as a specialized (专精特新) enterprise?" is English
    indexed = set(lexicon.cities())
    pinyin = english_people(simple, lexicon) if plan.language == "en" else {}
    named_people = list(pinyin.values())
    placed = simple  # the text places are read from: a person's name is none (CPPCC member Yue Zhaoyang is not 朝阳市)
    for en in pinyin:
        placed = re.sub(r"(?i)\b" + r"[^A-Za-z]+".join(map(re.escape, en.split())) + r"\b", " ", placed)
    if cities:
        plan.cities = [normalise_place(c) for c in cities]
    else:
        plan.cities, unknown = place_filter(placed, indexed)
        known = getattr(lexicon, "known", None)
        plan.unknown_places = [p for p in unknown if known is None or not (known(p) or known(short_name(p)))]
        written = [p for p in unknown if p not in plan.unknown_places]  # no reply of its own, written about in one
    plan.years = [str(y) for y in years] if years else list(dict.fromkeys(_YEAR_FILTER.findall(simple)))
    plan.expansion = expand_english(simple)
    if named_people:  # deputy Wen Zhengmin -> 温政敏: the reply's salutation finds it
        plan.expansion = f"{plan.expansion} {' '.join(named_people)}".strip()
    topic = f"{simple} {plan.expansion}".strip()
    names = [m.span() for m in _NAME_SPAN.finditer(topic)] + [m.span() for n in named_people for m in re.finditer(re.escape(n), topic)]
    for full, a, b in sorted(find_places(topic), key=lambda x: -x[1]):  # place names are filters, not topic words
        if full in written:  # a place only written about is what the passage must be about: a topic word
            continue
        if any(x <= a and b <= y for x, y in names):  # inside a quoted name (“@沈阳营商”, 《沈阳市…办法》): part of the name
            continue
        topic = topic[:a] + " " + topic[b:]
    for c in plan.cities:  # and so are the indexed places below the gazetteer's level (秭归县, 环翠区)
        base = _base(c)
        for name in (base, re.sub(r"(市|县|区|旗)$", "", base), _own_name(base)):
            if len(name) >= 2:
                topic = _outside_names(topic, lambda t, n=name: t.replace(n, " "))
    plan.terms, plan.alts, plan.official = _key_terms(topic)
    known = getattr(lexicon, "known", None)
    if known is not None:  # a Latin word the replies themselves use (ChatZOC, SaaS, IPO) names what they say
        latin = [w for w in re.findall(r"[a-z][a-z0-9]{2,}", topic.lower()) if w not in _EN_STOP and known(w)]
        plan.terms += [w for w in dict.fromkeys(latin) if w not in plan.terms]
    if simple != text:
        plan.official = f"{plan.official} {simple}".strip()
    plan.meta = meta_intents(simple)
    # …的提案时,在打造公平竞争市场环境方面做了哪些工作?: an aspect named, its section answers, not the outline
    plan.about_reply = bool(_ABOUT_REPLY.search(simple)) and not re.search(r"在[^，,。?？]{2,40}方面", simple)
    plan.respectively = bool(_RESPECTIVELY.search(plan.text))
    apart = _counties_named_apart(placed, plan.cities)
    masked = placed
    for c in apart:  # the county counts once, as itself (岳阳县 is not also the gazetteer's 岳阳市)
        masked = masked.replace(c, "〇" * len(c))
    # a place without a reply of its own (宜宾 in 四川省's) is what the question is about, not a reply compared
    def compared(p: str) -> bool:  # a place with a reply of its own, or of a district of it (丽水市 for 丽水市莲都区)
        return bool(cities) or p in plan.unknown_places or any(c == p or c.startswith(p) for c in indexed)

    named = len([p for p in named_places(masked) if p not in written and compared(p)] + apart)
    if ABOUT_ASSISTANT.search(simple) and not plan.cities:
        plan.kind = "assistant"
    elif COMPARATIVE.search(simple) or named >= 2 or (_SEVERAL.search(simple) and not plan.meta and named != 1):
        plan.kind = "comparative"
    elif plan.meta:
        plan.kind = "meta"
    elif asks_for_section(simple):
        plan.kind = "section"
    plan.frame = frame_terms(simple, plan.terms)
    plan.proposers = list(dict.fromkeys(PROPOSER.findall(normalise(simple))))
    said = [t for t in plan.terms if any(t in n for n in named_people)]
    if said and len(said) < len(plan.terms):  # whom it answers says which reply, no more
        plan.frame = list(dict.fromkeys([*plan.frame, *said]))
    work = plan if simple == text else QuestionPlan(text=simple, terms=plan.terms, alts=plan.alts, frame=plan.frame)
    plan.parts = [analyze_part(p, work) for p in question_parts(simple)]
    for prev, part in zip(plan.parts, plan.parts[1:]):  # 2020年上半年…是多少?占…的比重提升到了多少?: the same part of the year
        if not part.period and not part.years and not part.years_en:
            part.period = prev.period
    plan.whole = plan.parts[0] if len(plan.parts) == 1 else analyze_part(simple, work)
    for part in {id(p): p for p in (*plan.parts, plan.whole)}.values():
        part.places = list(written)
    return plan
