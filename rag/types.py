"""The small typed records that flow between the pipeline stages.

loader -> RawFile -> parser -> Document (with Sections) -> chunker -> Chunk
-> index/retriever -> Hit -> answerer -> Answer (with Citations)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RawFile:
    """A file read from disk and decoded to text."""

    path: str
    doc_id: str
    text: str
    encoding: str
    fmt: str  # txt, md, html, docx, pdf
    content_hash: str


@dataclass
class DocMeta:
    doc_id: str
    city: str = ""  # 营口市, 辽宁省 ...
    issuer: str = ""  # 郑州市工业和信息化局
    addressee: str = ""  # 孙建伟代表
    title: str = ""  # 《关于…的建议》 (without the brackets)
    number: str = ""  # 第B(2024)059号 -> B(2024)059
    date: str = ""  # YYYY-MM-DD or YYYY-MM or YYYY
    source: str = ""  # URL or path
    path: str = ""
    content_hash: str = ""

    @property
    def year(self) -> str:
        return self.date[:4] if self.date else ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    """A node of the reply's outline. `text` is the body directly under the heading."""

    label: str  # the heading text, e.g. "一、在拓展融资渠道…方面" or "一是建立健全金融服务工作机制"
    level: int  # 1 = 一、, 2 = (一), 3 = 1., 4 = 一是 (relative order only)
    text: str = ""
    children: list["Section"] = field(default_factory=list)
    heading: str = ""  # the heading line as written, when it stands alone (一、工作开展情况)


@dataclass
class Document:
    meta: DocMeta
    sections: list[Section]  # top level outline; preamble/closing are sections too
    boilerplate: list[str] = field(default_factory=list)  # stripped web chrome, kept for inspection
    text: str = ""  # cleaned full text (no boilerplate)


@dataclass
class Chunk:
    chunk_id: str  # f"{doc_id}#{ordinal}"
    doc_id: str
    ordinal: int
    text: str  # the passage as in the reply (what answers quote)
    section_path: list[str]
    city: str = ""
    title: str = ""
    issuer: str = ""
    date: str = ""

    @property
    def section(self) -> str:
        return " › ".join(self.section_path)

    def context_text(self) -> str:
        """What is embedded and BM25-indexed: the passage with its context."""
        head = " ".join(x for x in (self.city, self.issuer, self.title and f"《{self.title}》", self.section) if x)
        return f"{head}\n{self.text}" if head else self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "doc_id": self.doc_id,
            "ordinal": self.ordinal,
            "text": self.text,
            "section_path": self.section_path,
            "city": self.city,
            "title": self.title,
            "issuer": self.issuer,
            "date": self.date,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Chunk":
        return cls(**{k: d.get(k, "") for k in cls.__dataclass_fields__})


@dataclass
class Hit:
    chunk: Chunk
    score: float
    rank: int = 0
    sources: dict[str, int] = field(default_factory=dict)  # rank per retriever, e.g. {"dense": 3, "bm25": 1}
    dense: float = 0.0  # cosine similarity to the question (0 when the dense retriever did not return it)
    coverage: float = 0.0  # IDF-weighted share of the question's key terms in the passage


@dataclass
class PlanPart:
    """One asked thing of a question (…发布了多少需求?累计放款多少? has two parts), analysed once."""

    text: str
    terms: list[str] = field(default_factory=list)  # its key terms weighted twice, then the whole question's
    alts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    heads: list[str] = field(default_factory=list)  # the head nouns next to 多少/几 (多少购房补贴 -> 购房, 补贴)
    near: list[str] = field(default_factory=list)  # what is done before 多少, to what (比重提升到了多少 -> 比重, 提升): scores, checks nothing
    asks_number: bool = False  # the answer is a figure or a date
    unit: str = ""  # the kind of figure asked (textproc.UNIT_KINDS): money, date, count:家户, measure:笔 …
    qualifiers: list[str] = field(default_factory=list)  # maximum, per_unit
    years: list[str] = field(default_factory=list)  # 2023年 (not inside a 《title》)
    years_en: list[str] = field(default_factory=list)  # "in 2022" of an English question
    months: list[int] = field(default_factory=list)
    ordinals: list[str] = field(default_factory=list)  # 第二批
    districts: list[str] = field(default_factory=list)  # 黄埔 (of 黄埔区)
    levels: list[str] = field(default_factory=list)  # the level of government a recognition is asked at: 市级 -> 市 (国家, 省, 市, 区, 县)
    quoted: list[str] = field(default_factory=list)  # “企业家日”
    kinds: list[str] = field(default_factory=list)  # 有什么奖励 -> 奖励
    concepts: list[str] = field(default_factory=list)  # the field's named concepts (首贷户, 创新型中小企业)
    meta: list[str] = field(default_factory=list)  # what this part asks about the reply itself (date, addressee…)
    places: list[str] = field(default_factory=list)  # places named with no reply of their own but written about in one (哈尔滨)
    event: str = ""  # what a date is asked of (是哪一年成立的 -> 成立): the sentence dates that event
    holder: str = ""  # who holds a role is asked (组长由谁担任 -> 担任): the sentence says that verb of someone
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # the amounts and counts it states (超过百亿元 -> 100, 亿, 元)
    figure_numbers: list[str] = field(default_factory=list)  # their numbers; an English question's numbers that are no years
    confirms: bool = False  # a yes/no question (是否…2500元?): a passage stating another figure answers it
    period: str = ""  # the period a figure is asked for: 全年, 上半年, 一季度 … ("" for none named)
    flow: bool = False  # an increase is asked (新增了多少家), not a total reached
    asks_name: bool = False  # a name is asked (叫什么名字), not a figure
    asks_list: bool = False  # several things are asked (哪些政策措施, 哪几个方面), not a figure
    asks_measures: bool = False  # what is done is asked (做了哪些工作, 采取了哪些措施, 针对哪些建议作了回应)
    en_head: str = ""  # an English quantity question's head words (how much registered capital -> registered capital)
    en_head_zh: list[str] = field(default_factory=list)  # their Chinese in the glossary (none: nothing to check them by)
    english: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alts"] = {k: list(v) for k, v in self.alts.items()}
        return d


@dataclass
class QuestionPlan:
    """Everything the pipeline needs to know about a question, computed once by rag.plan.analyze and read by
    the retriever, the answerer, the LLM path and follow-up rewriting."""

    text: str
    kind: str = "fact"  # fact | section | comparative | meta | assistant (about the tool itself: refused with what it does)
    parts: list[PlanPart] = field(default_factory=list)
    whole: PlanPart | None = None  # the whole question as one part (the same object as parts[0] when it has one)
    meta: list[str] = field(default_factory=list)  # meta intents: addressee, number, doc_number, date, issuer, topic, cosigners
    cities: list[str] = field(default_factory=list)  # filter: full place names
    years: list[str] = field(default_factory=list)  # filter: reply years
    unknown_places: list[str] = field(default_factory=list)  # named in the question, no reply about them
    language: str = "zh"  # zh | en
    expansion: str = ""  # Chinese glossary terms of an English question
    terms: list[str] = field(default_factory=list)  # key terms of the whole question
    alts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # term -> strings that count as it (thesaurus)
    official: str = ""  # the documents' wording of everyday words (头一回 -> 首次), for BM25
    about_reply: bool = False  # it asks of a reply as a whole (答复…提案时, …建议的答复中), not of one of its sections
    respectively: bool = False  # it asks each of several things (分别, 各自): a field of each reply it names, not the first's
    # key terms that only say which reply is meant (答复徐兵、陈志奇委员时, 第JY20250126号建议, 发展改革委答复…): they
    # find the reply (plan.terms), they are not what a sentence must say (left out of each part's terms)
    frame: list[str] = field(default_factory=list)
    proposers: list[str] = field(default_factory=list)  # the deputies or members it names (答复林平代表…和钟文新委员时)

    @property
    def comparative(self) -> bool:
        return self.kind == "comparative"

    @property
    def search_text(self) -> str:
        return f"{self.text} {self.expansion}".strip()

    @property
    def lexical_text(self) -> str:
        return f"{self.search_text} {self.official}".strip()

    def equivalents(self, term: str) -> tuple[str, ...]:
        return self.alts.get(term, (term,))

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "kind": self.kind, "language": self.language, "meta": self.meta,
            "cities": self.cities, "years": self.years, "unknown_places": self.unknown_places,
            "terms": self.terms, "expansion": self.expansion, "official": self.official, "about_reply": self.about_reply,
            "frame": self.frame, "proposers": self.proposers, "parts": [p.to_dict() for p in self.parts],
        }


@dataclass
class Finding:
    """What one named check (rag.checks) found about one candidate sentence for one part of a question."""

    check: str
    ok: bool  # False: a reason to refuse this sentence
    reason: str = ""  # why it failed, e.g. "unit 户 asked, the sentence states none"
    applies: bool = True  # the question asks what this check tests (a month, a district…)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Citation:
    n: int
    doc_id: str
    city: str
    title: str
    section: str
    text: str
    score: float
    issuer: str = ""
    date: str = ""
    quote: str = ""  # the cited sentence(s) inside `text`
    chunk_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation]
    timings_ms: dict[str, float] = field(default_factory=dict)
    provider: str = "extractive"
    unsupported: list[str] = field(default_factory=list)  # numbers not found in the cited passages
    unmarked: list[str] = field(default_factory=list)  # sentences without any citation marker
    note: str = ""  # e.g. "LLM failed: connection refused; extractive answer shown"
    rewritten_question: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    plan: "QuestionPlan | None" = None
    why: list[dict[str, Any]] = field(default_factory=list)  # per answer sentence / refusal: the checks that fired
    # with an LLM: the model's own answer and what the gate found (rag.gate), whether or not it is the one shown:
    # {"provider", "model", "text", "structured", "passages", "gate": {"passed", "failures"}, "shown", "first_token_ms"}
    llm: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "abstained": self.abstained,
            "citations": [c.to_dict() for c in self.citations],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "provider": self.provider,
            "unsupported": self.unsupported,
            "unmarked": self.unmarked,
            "note": self.note,
            "rewritten_question": self.rewritten_question,
            "filters": self.filters,
            "plan": self.plan.to_dict() if self.plan is not None else None,
            "why": self.why,
            "llm": self.llm,
        }
