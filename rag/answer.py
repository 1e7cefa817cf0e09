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
from dataclasses import replace
from typing import Callable

from .checks import NUMBER as _NUMBER
from .checks import Candidate, CheckContext, check_not_date, names_several, run_checks, states_figure, unused_topic
from .config import AnswerConfig
from .decide import Decider, features, load_decider
from .english import english_lead, english_refusal
from .parser import split_sentences
from .plan import grounding_terms
from .textproc import ITEM_MARKER, asked_fields, best_heading, domain_terms, equivalents, marker_style, mentions, normalise, unit_pattern
from .types import Answer, Chunk, Citation, DocMeta, Finding, Hit, PlanPart, QuestionPlan

_Sent = Candidate  # a candidate sentence (rag.checks.Candidate)
NOT_FOUND = "资料中未找到能回答该问题的内容。"
ABOUT_TOOL = ("这个问题问的是本工具自身,不是已收录的答复。本工具只根据已收录的政府答复原文回答,每句答案都标注出处;"
              "请就答复的内容提问,例如“营口市对博士每月补贴多少?”")


def _figure_near_head(part: PlanPart) -> list[re.Pattern[str]]:
    """A figure written right next to each thing asked about: 为多少家企业授信 -> '4534家企业授信', '授信34.41亿元';
    one pattern a head or near term (with its equivalents), so that a sentence can be scored by how many of them
    have the figure beside them (比重提升到了多少: '比重提升到68.1%' holds both, '比重为51.2%' one)."""
    fig = r"\d[\d.,]*\s*(?:余|多)?\s*(?:万|亿)?\s*[\u4e00-\u9fff%]?"
    out = []
    for t in dict.fromkeys((*part.heads, *part.near)):
        h = "|".join(map(re.escape, equivalents(t)))
        out.append(re.compile(rf"{fig}[^，。；,;]{{0,6}}(?:{h})|(?:{h})[^，。；,;]{{0,6}}\d"))
    return out


def _near_share(patterns: list[re.Pattern[str]], text: str) -> float:
    """The share of the asked things (_figure_near_head) with a figure written beside them in `text`."""
    return sum(1 for rx in patterns if rx.search(text)) / len(patterns) if patterns else 0.0


def _repeats_kept(quoted: list[str], window: str, sentence: str) -> float:
    """哪几个“加速”: a sentence naming the quoted thing several times (加速…能级提升,…加速…梯度培育,…加速…生态建设) is
    cut to a window keeping as many of them as it can; the share kept (0 when it names it once or not at all)."""
    counts = [(window.count(q), sentence.count(q)) for q in quoted if sentence.count(q) >= 2]
    return max((a / b for a, b in counts), default=0.0)


def _first_line(chunks: list[Chunk], patterns: tuple[re.Pattern[str], ...]) -> tuple[Chunk, str] | None:
    """The first line, or sentence of a line, matching a pattern (patterns tried in order of preference)."""
    for rx in patterns:
        for c in chunks:
            for ln in c.text.split("\n"):
                for x in (ln.strip(), *split_sentences(ln.strip())):
                    if len(x) <= 200 and rx.search(x):
                        return c, x
    return None


_PROPOSAL_NO = re.compile(r"第\s*([A-Za-z]*\d{3,})\s*号")


def _written_date(iso: str) -> str:
    """A DocMeta date as the replies write it, with the ISO form: 2019-12-30 -> 2019年12月30日(2019-12-30)."""
    m = re.fullmatch(r"((?:19|20)\d{2})(?:-(\d{1,2}))?(?:-(\d{1,2}))?", iso.strip())
    if not m:
        return iso
    y, mo, d = m.groups()
    zh = f"{y}年" + (f"{int(mo)}月" if mo else "") + (f"{int(d)}日" if d else "")
    return f"{zh}({iso})" if mo else zh


def _is_heading(sentence: str, path: list[str]) -> bool:
    """Is this line the heading of the section asked about or of one above it (一、工作开展情况)? Those are no answer."""
    core = normalise(ITEM_MARKER.sub("", sentence)).rstrip("。.")
    return any(core == normalise(ITEM_MARKER.sub("", label)).rstrip("。.") for label in path)


def _is_item_title(sentence: str) -> bool:
    """A short sentence naming an item (三是推动组建产学研联盟。) rather than stating its content."""
    return len(sentence) <= 24 and not _NUMBER.search(ITEM_MARKER.sub("", sentence))


# a sentence announcing a list that the next items tell (主要开展了以下工作: / 从以下四个方面:), not the reply itself
_INTRODUCER = re.compile(r"(以下|如下|下列|[几一二三四五六七八九十两]个?方面|[几一二三四五六七八九十两]点)[^。:：]{0,12}[:：]\s*$")
_WHOLE_REPLY = re.compile(r"(答复|回复|函复|复函|报告|汇报|说明)(如下|以下)")


def introduces_list(sentence: str) -> bool:
    """主要开展了以下工作: announces the items after it; 现答复如下: announces the whole reply (no list)."""
    return bool(_INTRODUCER.search(sentence)) and not _WHOLE_REPLY.search(sentence)


def listed_items(doc_chunks: list[Chunk], chunk: Chunk, leads: Callable[[str], bool], window: int = 8
                 ) -> tuple[str, list[tuple[Chunk, list[str]]]] | None:
    """A list inside or after a passage: the first sentence of `chunk` that `leads` accepts and that the first
    item follows (一是…, in the same paragraph, the next one, or the next passage), and the items, each with the
    passage of its first sentence and its sentences. The list ends at a marker of another kind (二、 after 三是),
    or at a paragraph not starting with a marker (a passage cut inside an item goes on with it)."""
    try:
        start = next(i for i, c in enumerate(doc_chunks) if c.chunk_id == chunk.chunk_id)
    except StopIteration:
        doc_chunks, start = [chunk], 0
    seq: list[tuple[Chunk, bool, str]] = []  # (passage, starts a paragraph, sentence)
    for c in doc_chunks[start : start + window]:
        for line in c.text.split("\n"):
            for n, x in enumerate(x.strip() for x in split_sentences(line) if x.strip()):
                seq.append((c, n == 0, x))
    def inside_item(i: int) -> bool:  # the lead is itself part of an item of the list that follows (一是…。编制…。二是…)
        style, j = marker_style(seq[i + 1][2]), i
        c = seq[i][0]
        if c.section_path and marker_style(c.section_path[-1]) == style:  # the chunker's item heading, unless the
            at = c.text.find(c.section_path[-1][:12])  # passage reaches it only after the lead (lead, then 一是…)
            if at == -1 or at < c.text.find(seq[i][2]):
                return True
        while True:
            if marker_style(seq[j][2]) == style:
                return True
            if seq[j][1] or j == 0:
                return False
            j -= 1

    lead_at = next((i for i, (c, _, x) in enumerate(seq[:-1])
                    if c is chunk and marker_style(seq[i + 1][2]) and leads(x) and not inside_item(i)), None)
    if lead_at is None:
        return None
    style = marker_style(seq[lead_at + 1][2])
    items: list[tuple[Chunk, list[str]]] = []
    prev_chunk = chunk
    for c, para_start, x in seq[lead_at + 1 :]:
        mark = marker_style(x)
        if mark == style:
            items.append((c, [x]))
        elif mark or (para_start and not (c is not prev_chunk and c.section_path == prev_chunk.section_path)):
            break
        else:
            items[-1][1].append(x)
        prev_chunk = c
    return (seq[lead_at][2], items) if len(items) >= 2 else None


_ANNOUNCES = re.compile(r"(?:一系列|一批|多项|若干|以下|如下|系列|相继|先后|密集)[^，。；,;]{0,16}(?:措施|政策|举措|文件|办法|意见|方案)[^。；;、《》]{0,24}[。:：]?$")


def _announces_list(sentence: str) -> bool:
    """本市出台了一系列减轻企业社保负担的措施,…。: a sentence that announces measures without naming them; they
    follow in the next sentence."""
    return bool(_ANNOUNCES.search(sentence.strip())) and "、" not in sentence and "《" not in sentence


def _asked_outside_titles(part: PlanPart) -> list[str]:
    """Of a question that names a 《title》, its key terms written outside the title (《云南省中小企业促进条例》在哪些方面
    有突破 -> 突破): what is asked of the document, not its name. None for a question without a title."""
    if "《" not in part.text:
        return []
    outside = normalise(re.sub(r"《[^》]*》", " ", part.text)).lower()
    inside = normalise(" ".join(re.findall(r"《([^》]*)》", part.text))).lower()
    return [t for t in dict.fromkeys(part.terms) if len(t) >= 2 and t in outside and t not in inside and not re.fullmatch(r"[\d.]+", t)]


def _item_sentences(sents: list[str]) -> list[str]:
    """What an item is quoted by: its title sentence and what it says next (三是健全…体系。…), else its first."""
    return sents[:2] if sents and _is_item_title(sents[0]) else sents[:1]


def _quoted(picked: list[str], limit: int = 150) -> tuple[str, tuple[str, ...]]:
    """The line quoting these sentences, each cut after its last whole clause within `limit` characters (… marks a
    cut), and the verbatim pieces it shows."""
    pieces = tuple(_head_clauses(x, limit) for x in picked)
    return "".join(p if p == x else p + "…" for p, x in zip(pieces, picked)), pieces


def _named_apart(groups: list[tuple[str | None, list[_Sent]]]) -> list[tuple[str | None, list[_Sent]]]:
    """Labels of two documents of one place named apart by their document ids (天津市(122_tianjin))."""
    labels = [g[0] for g in groups]
    return [(f"{lab}({g[1][0].hit.chunk.doc_id})" if labels.count(lab) > 1 else lab, g[1]) for lab, g in zip(labels, groups)]


def _unmarked(text: str) -> str:
    """A quoted sentence as the answer shows it: brackets around digits in the passage (常工信提复[2025]3号) in full
    width (［2025］), so that nothing reads them as a citation marker; the quote itself stays verbatim."""
    return re.sub(r"\[(\s*\d[\d\s,，、\-–~]*)\]", r"［\1］", text)


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


def _clauses_window(sentence: str, scorer: Callable[[str], float], limit: int) -> str:
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
    """Quotes the passages' own sentences for the question's plan. Its thresholds are `[answer]` (AnswerConfig);
    the sentence of a fact answer and the answer/refuse decision are the learned decision's (rag.decide) unless
    `decision = "rules"`, where every named check (rag.checks) must pass."""

    name = "extractive"

    def __init__(
        self,
        coverage: Callable[[object, str], float],
        cfg: AnswerConfig | None = None,
        section_chunks: Callable[[str, list[str]], list[Chunk]] | None = None,
        known: Callable[[str], bool] | None = None,
        missing: Callable[[object, str], float] | None = None,
        section_match: float = 0.5,
        doc_meta: Callable[[str], DocMeta | None] | None = None,
        decider: Decider | None = None,
    ):
        self.cfg = cfg or AnswerConfig()
        self.coverage = coverage  # coverage(part, text): IDF-weighted share of the part's key terms in text
        self.section_chunks = section_chunks
        self.known = known  # does any indexed passage use this word?
        self.missing = missing  # missing(part, text): the most specific key term text lacks (share of the weightiest)
        self.section_match = section_match  # share of a heading's bigrams a question must repeat to be about it
        self.doc_meta = doc_meta
        self.disabled = frozenset(x.strip() for x in self.cfg.disabled_checks.split(",") if x.strip())
        self.veto = frozenset(x.strip() for x in self.cfg.veto_checks.split(",") if x.strip())
        self.decider = decider
        if self.decider is None and self.cfg.decision == "learned":
            self.decider = load_decider(self.cfg.model or None)

    # -------------------------------------------------------------- public
    def answer(self, plan: QuestionPlan, hits: list[Hit]) -> Answer:
        self._why: list[dict] = []
        ans = self._answer(plan, hits)
        if plan.language == "en":  # an English question: an English lead line before the Chinese quotes
            if ans.abstained:
                ans.answer = english_refusal(ans.answer, plan.unknown_places)
            else:
                # the quoted figures are named in English only when a figure is asked (What follow-up work … is
                # not answered "over 82,000")
                asked = any(p.asks_number for p in plan.parts)
                lead = english_lead(ans.answer, ans.citations, self.cfg.english_figures if asked else 0)
                ans.answer = f"{lead}\n\n{ans.answer}" if lead else ans.answer
        ans.question = plan.text
        ans.plan = plan
        ans.why = self._why
        return ans

    def _answer(self, plan: QuestionPlan, hits: list[Hit]) -> Answer:
        if plan.unknown_places:
            places = "、".join(plan.unknown_places)
            self._why.append({"decision": "refuse", "reason": f"no reply about {places} is indexed"})
            return Answer(plan.text, f"资料中未找到关于{places}的答复,无法回答该问题。", True, [])
        if plan.kind == "assistant":
            self._why.append({"decision": "refuse", "reason": "the question is about this tool, not about the replies"})
            return Answer(plan.text, ABOUT_TOOL, True, [])
        if not hits:
            self._why.append({"decision": "refuse", "reason": "no passage retrieved"})
            return Answer(plan.text, NOT_FOUND, True, [])
        if plan.kind in ("fact", "comparative") and not plan.meta and (fields := self._fields(plan, hits)) is not None:
            return fields
        if plan.kind == "comparative":
            return self._comparative(plan, hits)
        if plan.kind == "meta" and len(docs := self._meta_documents(plan, hits)) > 1:
            return self._meta_per_document(plan, hits, docs)
        if plan.kind == "meta":
            facts = self._document_facts(plan, hits)
            if facts:
                # the other parts (…是谁提出的?建议的主题是什么?) are answered from the passages
                for part in (p for p in plan.parts if not p.meta and len(plan.parts) > 1):
                    s = self._pick(plan, part, hits[:3])
                    if s is not None and s.text not in {f.text for f in facts}:
                        facts.append(s)
                return self._compose([(None, facts)])
        sec = self._section(plan, hits)
        if sec is not None:
            return sec
        return self._single(plan, hits)

    # -------------------------------------------------------------- questions about the reply itself
    def _fields(self, plan: QuestionPlan, hits: list[Hit]) -> Answer | None:
        """A question that names a field of a reply's record (索引号, 法规分类, 主办单位, 建议类型 …): the fields
        quoted from the first passage of the best-ranked reply that has them (rag.textproc.asked_fields)."""
        several = plan.kind == "comparative" or plan.respectively
        groups: list[tuple[str | None, list[_Sent]]] = []
        for h in hits[: 5 if several else 3]:
            if h.chunk.ordinal != 0 or any(g[1][0].hit.chunk.doc_id == h.chunk.doc_id for g in groups):
                continue  # a reply's record is at its head
            found = asked_fields(plan.search_text, h.chunk.text, self.cfg.field_label_chars)  # with an English question's glossary words
            if found:
                groups.append((h.chunk.city if several else None, [_Sent(h.chunk.text[f.start:f.end], h, 1.0, 1.0, True, i) for i, f in enumerate(found)]))
                self._why.append({"decision": "answer", "route": "field", "doc": h.chunk.doc_id, "fields": [f.label for f in found]})
                if not several:
                    break
        if not groups:
            return None
        return self._compose(_named_apart(groups) if len(groups) > 1 else [(None, groups[0][1])])

    # how the reply states each fact about itself, in its opening or closing lines (patterns in order of preference)
    _META_LINES: dict[str, tuple[re.Pattern[str], ...]] = {
        # who made the proposal: the deputies named with it (谭聪圣代表提出的…), else the salutation (徐兵、陈志奇委员:)
        "addressee": (re.compile(r"[\u4e00-\u9fff、]{2,24}(代表|委员)(等\d*人)?(提出|联名|[:：])"), re.compile(r"^(尊敬的)?[^\s:：，,。]{2,30}[:：]$")),
        # the proposal's number (第0239号代表建议) and the reply's document number (沪经信建〔2020〕65号) are two things
        "number": (re.compile(r"第\s*[A-Za-z0-9（）()〔〕\[\]\-]{2,24}\s*号"), re.compile(r"编号\s*[:：|]?\s*\|?\s*[A-Za-z0-9\-]{3,}")),
        "doc_number": (re.compile(r"[\u4e00-\u9fff]{0,8}[〔\[(（]\d{4}[〕\])）]\s*第?\s*\d+\s*号"),),
        # 2021年3月22日 alone on a line, then within a line; else a portal's 2020-11-12 (提交日期: 2017-01-16)
        # (a date inside a sentence of the opening, 2019年12月4日,中央印发…, is another event's)
        "date": (re.compile(r"^(19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日$"),
                 re.compile(r"(日期|时间)\s*[:：|]?\s*\|?\s*((19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|(19|20)\d{2}-\d{1,2}-\d{1,2}(?!\d))"),
                 re.compile(r"^[^。，,；;]{0,30}((19|20)\d{2}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*日|(?<!\d)(19|20)\d{2}-\d{1,2}-\d{1,2}(?!\d))[^。，,；;]{0,12}$")),
        "topic": (re.compile(r"《[^》]{2,80}(建议|提案|议案)》|“关于[^”]{2,80}(建议|提案|议案)?”"),),
        "consulted": (re.compile(r"(会同|经与|经商|协同|联合|征求|结合|综合|汇总|商)[^。]{2,160}?(研究|意见|办理|答复)"),),
        "cosigners": (re.compile(r"[\u4e00-\u9fff、]{2,40}(代表|委员)[^。，,]{0,4}(联名|共同)|(您|你)与[\u4e00-\u9fff、]{2,40}(代表|委员)"),),
        "issuer": (re.compile(r"^[\u4e00-\u9fff]{2,30}(局|厅|委员会|委|办公室|办|政府|部)$"),),
        "category": (re.compile(r"(答复|办理)?类别\s*[:：|]?\s*\|?\s*[ABC]\s*类"), re.compile(r"^[ABC]\s*类$")),
    }

    def _meta_documents(self, plan: QuestionPlan, hits: list[Hit]) -> list[str]:
        """The replies a question about replies themselves asks of: every retrieved reply holding one of the
        proposal numbers it names when it names several (第0033号提案和第0567号提案…分别是答复谁的), else the first."""
        docs = list(dict.fromkeys(h.chunk.doc_id for h in hits))
        named = set(_PROPOSAL_NO.findall(normalise(plan.text)))
        if len(named) >= 2:
            holding = [d for d in docs if any(n in normalise(h.chunk.text) for h in hits if h.chunk.doc_id == d for n in named)]
            if len(holding) >= 2:
                return holding
        # 答复林平代表…和答复钟文新委员…时: the replies whose opening names each deputy or member
        people = plan.proposers
        if len(people) >= 2 and self.section_chunks is not None:
            opening = {d: normalise(" ".join(c.text for c in self.section_chunks(d, ["前言"]))) for d in docs}
            holding = [next(d for d in docs if p in opening[d]) for p in people if any(p in opening[d] for d in docs)]
            if len(set(holding)) >= 2:
                return list(dict.fromkeys(holding))
        return docs[:1]

    def _document_facts(self, plan: QuestionPlan, hits: list[Hit], doc_id: str | None = None) -> list[_Sent]:
        """Who the reply answers, its numbers, its date, who issued it: quoted from the reply's opening or closing
        lines, else stated from its DocMeta with a citation to the reply's first passage."""
        if self.section_chunks is None:
            return []
        doc_id = doc_id or hits[0].chunk.doc_id
        chunks = self.section_chunks(doc_id, ["前言"]) + self.section_chunks(doc_id, ["结语"])
        meta = self.doc_meta(doc_id) if self.doc_meta else None
        picked: list[_Sent] = []
        for intent in plan.meta:
            found = _first_line(chunks, self._META_LINES[intent])
            if found is not None and found[1] not in {p.text for p in picked}:
                c, line = found
                hit = next((h for h in hits if h.chunk.chunk_id == c.chunk_id), Hit(chunk=c, score=0.0, rank=len(hits) + 1))
                picked.append(_Sent(line, hit, 1.0, 1.0, True, len(picked)))
                self._why.append({"decision": "answer", "route": "meta", "intent": intent, "sentence": line, "source": "reply text"})
                continue
            value = {"date": meta.date, "issuer": meta.issuer, "addressee": meta.addressee, "number": meta.number, "topic": meta.title}.get(intent, "") if meta else ""
            first = (self.section_chunks(doc_id, []) or [None])[0]
            if value and first is not None:
                hit = next((h for h in hits if h.chunk.chunk_id == first.chunk_id), Hit(chunk=first, score=0.0, rank=len(hits) + 1))
                label = {"date": "答复日期", "issuer": "答复单位", "addressee": "答复对象", "number": "建议/提案编号", "topic": "建议/提案标题"}[intent]
                text = f"{label}(据答复的元数据):{_written_date(value) if intent == 'date' else value}"
                picked.append(_Sent(text, hit, 1.0, 1.0, True, len(picked), pieces=("",)))
                self._why.append({"decision": "answer", "route": "meta", "intent": intent, "sentence": text, "source": "DocMeta"})
        return picked

    # -------------------------------------------------------------- sentences
    def _sentences(self, part: PlanPart, hits: list[Hit]) -> list[_Sent]:
        cfg = self.cfg
        near = _figure_near_head(part) if part.asks_number else []
        unit = unit_pattern(part.unit) if part.asks_number else None
        when = re.compile("|".join(rf"(?<!\d){m}\s*月" for m in part.months)) if part.months else None

        def fits(t: str) -> float:  # the figure asked for: next to the thing asked about, in the unit and month asked;
            # the things a list question asks for (哪些政策措施: 《…》《…》, 甲、乙、丙)
            return cfg.near_head_bonus * _near_share(near, t) + (cfg.unit_bonus if unit and unit.search(t) else 0.0) + (
                cfg.month_bonus if when and when.search(t) else 0.0) + (cfg.list_bonus if part.asks_list and names_several(t) else 0.0)

        out: list[_Sent] = []
        order = 0
        for hit in hits:
            prior = 1.0 / hit.rank
            ch = hit.chunk
            lack = self.missing(part, " ".join([ch.text, ch.city, ch.title, *ch.section_path])) if self.missing else 0.0
            for para in hit.chunk.text.split("\n"):
                prev = ""
                for s in split_sentences(para):
                    s = s.strip()
                    if len(normalise(s)) < 4:
                        continue
                    whole = s
                    s = _clauses_window(s, lambda t: self.coverage(part, t) + fits(normalise(t)) + (
                        cfg.list_bonus * _repeats_kept(part.quoted, t, whole) if part.asks_list else 0.0), cfg.clause_window)
                    cov = self.coverage(part, s)
                    # a short sentence that goes on from the one before (截至目前,已为3户企业授信1.59亿元。) is
                    # judged and quoted with it: alone it does not say what it is about
                    if prev and len(s) <= 40 and len(prev) <= cfg.clause_window and prev + s in para:  # still word for word
                        joint = self.coverage(part, prev + s)
                        if joint >= cov + cfg.join_gain:
                            s, cov = prev + s, joint
                    prev = s if len(s) <= cfg.clause_window else ""
                    said = normalise(s)  # patterns read simplified characters (400萬元 is 400万元)
                    has_num = states_figure(said)
                    score = cov + cfg.prior_weight * prior + (cfg.number_bonus if part.asks_number and has_num else 0.0) + fits(said)
                    out.append(_Sent(s, hit, score, cov, has_num, order, said=said, near=_near_share(near, said) > 0,
                                     unit_fit=bool(unit and unit.search(said)), month_fit=bool(when and when.search(said)),
                                     missing=self.missing(part, said) if self.missing else 0.0, passage_missing=lack))
                    order += 1
        return out

    def _context(self, plan: QuestionPlan) -> CheckContext:
        return CheckContext(self.cfg, self.known, no_terms=not grounding_terms(plan.terms), latin=bool(re.search(r"[A-Za-z]{3,}", plan.text)),
                            before=self._before if self.section_chunks else None)

    def _before(self, chunk: Chunk) -> str:
        """The text of the passage before `chunk` in its section (a long paragraph cut in two goes on in it)."""
        same = self.section_chunks(chunk.doc_id, chunk.section_path)
        at = next((i for i, c in enumerate(same) if c.chunk_id == chunk.chunk_id), 0)
        return same[at - 1].text if at > 0 else ""

    def _judge(self, plan: QuestionPlan, part: PlanPart, s: _Sent, best: tuple[float, float]) -> tuple[bool, float, list[Finding]]:
        """(accepted, probability, findings) of one candidate: every check must pass (rules), or the learned
        decision's probability must reach its threshold."""
        findings = run_checks(part, s, self._context(plan), self.disabled)
        if self.cfg.decision == "rules" or self.decider is None:
            ok = all(f.ok for f in findings)
            return ok, 1.0 if ok else 0.0, findings
        if self.vetoed(findings):
            return False, 0.0, findings
        ok, p = self.decider.accepts(features(part, s, best[0], findings, best[1]))
        return ok, p, findings

    def vetoed(self, findings: list[Finding]) -> bool:
        return any(not f.ok and f.check in self.veto for f in findings)

    def candidates(self, plan: QuestionPlan, part: PlanPart, hits: list[Hit], sents: list[_Sent] | None = None) -> list[_Sent]:
        """The sentences judged for a part (`sents`: its _sentences, when already made): best heuristic score
        first, at most cfg.candidates."""
        sents = self._sentences(part, hits[:3]) if sents is None else sents
        return sorted(sents, key=lambda s: (-s.score, s.order))[: self.cfg.candidates]

    def _pick(self, plan: QuestionPlan, part: PlanPart, hits: list[Hit], sents: list[_Sent] | None = None,
              exclude: frozenset[str] = frozenset()) -> _Sent | None:
        """The sentence answering `part`, or None (with the reasons recorded in why); not one of `exclude`."""
        ranked = [s for s in self.candidates(plan, part, hits, sents) if s.text not in exclude]
        if not ranked:
            return None
        best_score = ranked[0].score
        best = (best_score, max(s.coverage for s in ranked))
        judged = [(s, *self._judge(plan, part, s, best)) for s in ranked]
        if self.cfg.decision == "rules" or self.decider is None:
            # the best sentence, or one nearly as relevant that does state what is asked (the number, the year)
            pool = [j for j in judged[:6] if j[0] is ranked[0] or j[0].score >= best_score * self.cfg.alt_pick_share]
            chosen = next((j for j in pool if j[1]), None)
        else:
            top = max(judged, key=lambda j: j[2])
            chosen = top if top[1] else None
        if chosen is None:
            s, _, p, findings = max(judged, key=lambda j: j[2]) if self.cfg.decision != "rules" else judged[0]
            self._why.append({"part": part.text, "decision": "refuse", "p": round(p, 3), "best_sentence": s.text,
                              "failed": [f"{f.check}: {f.reason}" for f in findings if not f.ok]})
            return None
        s, _, p, findings = chosen
        self._why.append({"part": part.text, "decision": "answer", "p": round(p, 3), "sentence": s.text,
                          "passed": [f.check for f in findings if f.ok and f.applies], "failed": [f"{f.check}: {f.reason}" for f in findings if not f.ok]})
        return s

    def _single(self, plan: QuestionPlan, hits: list[Hit]) -> Answer:
        top = hits[:3]
        whole = plan.whole or plan.parts[0]
        every = self._sentences(whole, top)  # the whole question's sentences: a one-part question's candidates
        chosen: list[_Sent] = []
        for part in plan.parts:
            s = self._pick(plan, part, top, every if part is whole else None)
            if s is None:
                if len(plan.parts) == 1:
                    return Answer(plan.text, NOT_FOUND, True, [])
                continue
            if s.text in {c.text for c in chosen}:
                # 是怎样看待乡镇企业的?为解决…定期做什么?: a later part that picks the sentence an earlier one quoted
                # gets its own best sentence besides it, when one is accepted
                s = self._pick(plan, part, top, None, frozenset(c.text for c in chosen))
            if s is not None and s.text not in {c.text for c in chosen}:
                chosen.append(s)
        if not chosen:
            return Answer(plan.text, NOT_FOUND, True, [])
        if len(plan.parts) == 1:
            # a second sentence when it is about as relevant (e.g. the figure follows the heading sentence)
            ranked = sorted(every, key=lambda s: (-s.score, s.order))
            first = chosen[0]
            best = (ranked[0].score, max(x.coverage for x in ranked[: self.cfg.candidates]))
            for s in ranked[:4]:
                if len(chosen) >= 2:
                    break
                if s.text != first.text and s.score >= first.score * self.cfg.second_sentence_share and self._judge(plan, whole, s, best)[0]:
                    chosen.append(s)
        asked = _asked_outside_titles(whole) if len(plan.parts) == 1 else []
        for c in list(chosen):
            # 一是积极支持…用地保障工作。: what the item says comes next; a sentence that restates the 《title》 asked
            # about without what is asked of it (…在哪些方面有突破: 突破) goes on in the next one when that says it
            lacking = [t for t in asked if not mentions(normalise(c.text).lower(), t)]
            goes_on = _is_item_title(c.text) or _announces_list(c.text)
            if not (goes_on or lacking):
                continue
            nxt = next((x for x in every if x.hit is c.hit and x.text == c.text), None)
            nxt = _next_sentence(every, nxt) if nxt is not None else None
            if nxt is None or nxt.text in {x.text for x in chosen}:
                continue
            if goes_on or any(mentions(normalise(nxt.text).lower(), t) for t in lacking):
                chosen.append(nxt)
        chosen.sort(key=lambda s: (s.hit.rank, s.order))
        return self._compose([(None, chosen)])

    # -------------------------------------------------------------- whole sections
    def _section(self, plan: QuestionPlan, hits: list[Hit]) -> Answer | None:
        if self.section_chunks is None:
            return None
        if plan.kind != "section" or plan.about_reply:  # …的提案时,介绍了哪些工作进展?: the reply's outline first
            out = self._outline(plan, hits)
            if out is not None or plan.kind != "section":
                return out
        found = best_heading([h.chunk.section_path for h in hits[:3]], plan.text, self.section_match)
        if found is None:
            return self._introduced(plan, hits) or self._outline(plan, hits)
        hit = hits[found[0]]
        prefix = hit.chunk.section_path[: found[1]]
        items = self._items(self.section_chunks(hit.chunk.doc_id, prefix), prefix, hit, hits)
        if not items:
            return None
        self._why.append({"decision": "answer", "route": "section", "section": " › ".join(prefix), "items": len(items)})
        ans = self._compose([(None, [it]) for it in items])
        ans.answer = f"{hit.chunk.city or hit.chunk.doc_id}「{ITEM_MARKER.sub('', prefix[-1])}」:\n" + "\n".join("· " + ln for ln in ans.answer.split("\n"))
        return ans

    def _outline(self, plan: QuestionPlan, hits: list[Hit]) -> Answer | None:
        """What a whole reply does (…的提案时,介绍了哪些工作进展? / 针对哪些建议作了回应?): the question says the
        reply's own topic — its opening (title, acknowledgement) covers the question at least `outline_coverage`
        and better than any of its headings — so the answer is the reply's top-level items, one line each (the
        heading and the sentence after it)."""
        part = plan.whole or plan.parts[0]
        if self.section_chunks is None or not part.asks_measures:
            return None
        # which reply is meant (答复严琦委员…时: plan.frame) is what its opening says: judged with the whole question
        part = replace(part, terms=list(dict.fromkeys([*part.terms, *plan.frame])))
        for doc_id in dict.fromkeys(h.chunk.doc_id for h in hits[:3]):
            chunks = self.section_chunks(doc_id, [])
            opening = " ".join([chunks[0].title if chunks else "", *(c.text for c in chunks if c.section_path[:1] == ["前言"])])
            body = [c for c in chunks if c.section_path and c.section_path[0] not in ("前言", "结语")]
            depth = 1
            tops = list(dict.fromkeys(tuple(c.section_path[:1]) for c in body))
            if len(tops) == 1:  # one heading over the whole reply (一、工作开展情况): its items are the outline
                depth = 2
                tops = list(dict.fromkeys(tuple(c.section_path[:2]) for c in body if len(c.section_path) >= 2))
            said = self.coverage(part, opening)
            if len(tops) < 2 or said < self.cfg.outline_coverage or max(self.coverage(part, t[-1]) for t in tops) >= said:
                continue
            items, budget = [], self.cfg.section_budget
            for n, top in enumerate(tops):
                c = next(c for c in body if tuple(c.section_path[:depth]) == top)
                line = next((ln.strip() for ln in c.text.split("\n") if ln.strip() and not _is_heading(ln.strip(), list(top[:-1]))), "")
                sents = [x.strip() for x in split_sentences(line) if len(normalise(x)) >= 4]
                text, pieces = _quoted(_item_sentences(sents))
                if budget <= 0 or not pieces:
                    break
                budget -= len(text)
                chit = next((h for h in hits if h.chunk.chunk_id == c.chunk_id), Hit(chunk=c, score=hits[0].score, rank=len(hits) + 1))
                items.append(_Sent(text, chit, 1.0, 1.0, bool(_NUMBER.search(text)), n, pieces))
            self._why.append({"decision": "answer", "route": "outline", "doc": doc_id, "opening_coverage": round(said, 3), "items": len(items)})
            ans = self._compose([(None, [it]) for it in items])
            city = chunks[0].city or doc_id
            ans.answer = f"{city}答复的各部分:\n" + "\n".join("· " + ln for ln in ans.answer.split("\n"))
            return ans
        return None

    def _introduced(self, plan: QuestionPlan, hits: list[Hit]) -> Answer | None:
        """A list led by a sentence and told in the items after it (一是…二是…), in one of the best passages: the
        lead (主要开展了以下工作: / 构建了“四维一体”的…体系。, a sentence saying most of the question), then one
        line per item (its title and what it says next), from the same paragraph or the passages that follow."""
        part = plan.whole or plan.parts[0]

        def leads(sentence: str) -> bool:  # it announces a list, or says most of the question
            return introduces_list(sentence) or self.coverage(part, sentence) >= self.cfg.list_lead_coverage

        for hit in hits[:3]:
            if self.coverage(part, hit.chunk.text) < self.cfg.introducer_coverage:
                continue
            doc = self.section_chunks(hit.chunk.doc_id, []) if self.section_chunks else []
            found = listed_items(doc, hit.chunk, leads)
            if found is None:
                continue
            lead, listed = found
            by_id = {h.chunk.chunk_id: h for h in hits}
            items, budget = [], self.cfg.section_budget
            for n, (c, sents) in enumerate(listed):
                if budget <= 0:
                    break
                text, pieces = _quoted(_item_sentences(sents))
                budget -= len(text)
                chit = by_id.get(c.chunk_id) or Hit(chunk=c, score=hit.score, rank=hit.rank)
                items.append(_Sent(text, chit, 1.0, 1.0, bool(_NUMBER.search(text)), n + 1, pieces))
            self._why.append({"decision": "answer", "route": "list", "lead": lead, "items": len(items)})
            ans = self._compose([(None, [_Sent(lead, hit, 1.0, 1.0, False, 0)]), *((None, [it]) for it in items)])
            head, *rest = ans.answer.split("\n")
            ans.answer = f"{hit.chunk.city or hit.chunk.doc_id}:{head}\n" + "\n".join("· " + ln for ln in rest)
            return ans
        return None

    def _items(self, chunks: list[Chunk], prefix: list[str], hit: Hit, hits: list[Hit]) -> list[_Sent]:
        """One line per outline item of the chunks: each line of a chunk is an item (merged items keep their lines);
        a short section is quoted whole, a long one by each item's title, what it says next and its most telling
        sentence, within `section_budget` characters."""
        domain = domain_terms()

        def salience(x: str) -> float:
            named = 0.5 if re.search(r"“[^”]{2,12}”", x) else 0.0  # a named programme or policy
            return (1.0 if _NUMBER.search(x) else 0.0) + 0.8 * sum(1 for t in domain if t in x) + named - 0.002 * len(x)

        items: list[_Sent] = []
        budget = self.cfg.section_budget
        lines = [
            (c, [x for x in (y.strip() for y in split_sentences(line)) if len(normalise(x)) >= 4 and not _is_heading(x, prefix)])
            for c in chunks
            for line in c.text.split("\n")
        ]  # the section heading itself is no answer
        whole = sum(len(x) for _, sents in lines for x in sents) <= self.cfg.whole_section_chars
        for c, sents in lines:
            chit = next((h for h in hits if h.chunk.chunk_id == c.chunk_id), Hit(chunk=c, score=hit.score, rank=hit.rank))
            if not sents or budget <= 0:
                continue
            if whole:  # a short section is quoted whole: every measure it names
                picked = list(sents)
            else:  # an item's title sentence (三是健全…体系。), what it says next, and its most telling sentence
                picked = _item_sentences(sents)
                rest = sorted((x for x in sents if x not in picked), key=lambda x: -salience(x))
                if rest and salience(rest[0]) > 0.5:
                    picked.append(rest[0])
            text, pieces = _quoted(sorted(picked, key=sents.index))
            budget -= len(text)
            items.append(_Sent(text, chit, 1.0, 1.0, bool(_NUMBER.search(text)), len(items), pieces))
        return items

    # -------------------------------------------------------------- comparative
    def _comparative(self, plan: QuestionPlan, hits: list[Hit]) -> Answer:
        cfg, whole = self.cfg, plan.whole or plan.parts[0]
        by_doc: dict[str, list[Hit]] = {}
        for h in hits:
            by_doc.setdefault(h.chunk.doc_id, []).append(h)
        if plan.meta:  # 两份答复分别是答复哪位代表的: each reply's facts about itself
            return self._meta_per_document(plan, hits, list(by_doc))
        # 各地对低空经济企业有哪些补贴?: a list of places is no answer about a topic none of the replies is about. Only
        # here: on single-reply questions the same test refused 16 answerable paraphrases (高科技 for 高新技术, 利息
        # for 贴息) of 951, where the learned decision weighs what the sentence lacks instead
        topic = unused_topic(whole, self.known) if self.known is not None and "unused_topic" not in self.disabled else ""
        if topic:
            self._why.append({"decision": "refuse", "route": "comparative", "reason": f"{topic} asked, no indexed reply uses it"})
            return Answer(plan.text, f"已收录的答复都没有提到“{topic}”,无法回答该问题。", True, [])
        groups: list[tuple[str | None, list[_Sent]]] = []
        per_doc: list[tuple[str, list[Hit], list[_Sent]]] = []
        for doc_id, doc_hits in by_doc.items():
            sents = self._sentences(whole, doc_hits)
            if sents:
                ranked = sorted(sents, key=lambda s: (-(s.score + (cfg.comparative_number_bonus if s.has_number else 0.0)), s.order))
                per_doc.append((doc_id, doc_hits, ranked))
        # a document is in the list when a sentence of it names what the question quotes or one of the field's names
        # it uses (首贷, 免申即享), or says about as much of the question as the best document's best sentence
        bar = max(cfg.comparative_min_coverage, cfg.comparative_share * max((max(s.coverage for s in r) for _, _, r in per_doc), default=0.0))
        quoted = whole.quoted
        names = quoted or [t for t in plan.terms if t in domain_terms()]
        ctx = self._context(plan)
        for doc_id, doc_hits, ranked in per_doc:
            if whole.asks_number:  # 多少名专家: a reply's sentence states a figure (not only a date), or the reply is left out;
                # the kind of figure and the year are not asked of each reply alike (各合并了多少件 is answered by 7个提案,
                # 2021年和2023年… by one year each), so only not_date of the fact route's checks
                ranked = [s for s in ranked if s.has_number and ("not_date" in self.disabled or check_not_date(whole, s, ctx).ok)]
                if not ranked:
                    continue
            if quoted:  # the sentences naming it first
                ranked.sort(key=lambda s: not all(mentions(normalise(s.text).lower(), p) for p in quoted))
            best = ranked[0]
            named = any(n in normalise(s.text).lower() for s in ranked for n in names)
            dense_only = ctx.no_terms and ctx.latin and best.hit.dense >= cfg.min_dense
            if not (named and best.coverage >= cfg.comparative_min_coverage) and max(s.coverage for s in ranked) < bar and not dense_only:
                continue
            chosen = [best]
            if _is_item_title(best.text):  # 一是举办第二届民营企业家日活动。: what the item says comes next
                nxt = _next_sentence(ranked, best)
                if nxt is not None:
                    chosen.append(nxt)
            # one more sentence nearly as relevant, a figure first (情况如何 / 进展如何 want the numbers)
            more = [s for s in ranked[1:4] if s not in chosen and s.score >= best.score * cfg.comparative_more_share and s.coverage >= cfg.comparative_min_coverage]
            more.sort(key=lambda s: not s.has_number)
            chosen += more[:1]
            chosen.sort(key=lambda s: s.order)
            label = doc_hits[0].chunk.city or doc_id
            groups.append((label, chosen))
            self._why.append({"decision": "answer", "route": "comparative", "doc": doc_id, "sentences": [c.text for c in chosen]})
        if not groups:
            self._why.append({"decision": "refuse", "route": "comparative", "reason": "no reply says enough of the question"})
            return Answer(plan.text, NOT_FOUND, True, [])
        return self._compose(_named_apart(groups))

    def _meta_per_document(self, plan: QuestionPlan, hits: list[Hit], docs: list[str]) -> Answer:
        """A question about several replies themselves (分别是答复谁的?): each reply's facts on a line of its own."""
        groups: list[tuple[str | None, list[_Sent]]] = []
        for doc_id in docs:
            facts = self._document_facts(plan, hits, doc_id)
            if facts:
                groups.append((facts[0].hit.chunk.city or doc_id, facts))
        if not groups:
            self._why.append({"decision": "refuse", "route": "meta", "reason": "none of the replies states what is asked about it"})
            return Answer(plan.text, NOT_FOUND, True, [])
        return self._compose(_named_apart(groups))

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
                parts.append(f"{_unmarked(s.text)}[{cites[c.chunk_id].n}]")
            body = "".join(parts)
            lines.append(f"{label}:{body}" if label else body)
        return Answer("", "\n".join(lines), False, list(cites.values()))
