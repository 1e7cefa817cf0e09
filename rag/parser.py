"""Stage 2: turn a reply's text into its outline (Sections) and metadata (DocMeta).

Markers, outermost first:   一、   (一)/（一）   1. / 1、   1) / ①   一是 (paragraph-leading)
and the in-paragraph enumerations 一是…二是…三是… that often run inside one long paragraph.
Levels are relative: a marker nests under whatever outer marker precedes it, and an enumeration
that restarts at 一 under a sibling of the same kind nests under that sibling (天津's 三是 → 一是…五是).
Web boilerplate lines (breadcrumbs, 来源/发布时间, 附件, 主办单位, contact lines) are removed from the
outline but kept in Document.boilerplate, and used for metadata.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .places import dominant_place, normalise_place, place_prefix
from .types import DocMeta, Document, RawFile, Section

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_NUM = "一二三四五六七八九十"


def cn_to_int(s: str) -> int:
    """一 -> 1, 十 -> 10, 十二 -> 12, 二十三 -> 23 (enough for outline ordinals)."""
    if s.isdigit():
        return int(s)
    if "十" in s:
        a, _, b = s.partition("十")
        return (CN_DIGITS.get(a, 1) if a else 1) * 10 + (CN_DIGITS.get(b, 0) if b else 0)
    n = 0
    for ch in s:
        n = n * 10 + CN_DIGITS.get(ch, 0)
    return n


# ---------------------------------------------------------------- line markers
# rank: smaller = outer. The same rank can still nest when an enumeration restarts at 1.
_MARKERS: list[tuple[int, re.Pattern[str]]] = [
    (1, re.compile(rf"^(第?[{CN_NUM}]{{1,3}})[、．.]\s*")),
    (2, re.compile(rf"^[（(]([{CN_NUM}]{{1,3}})[)）]\s*")),
    (3, re.compile(r"^(\d{1,2})(?:[、．]|\.(?!\d))\s*")),
    (4, re.compile(r"^[（(](\d{1,2})[)）]\s*|^(\d{1,2})[)）]\s*")),
    (5, re.compile(r"^([①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳])\s*")),
    (6, re.compile(rf"^([{CN_NUM}]{{1,3}})是")),
]
_CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
INLINE_RANK = 7
# restarts (一是 after 二是) nest; beyond this depth they are siblings: thousands of restarts would otherwise
# nest thousands deep (RecursionError, and section paths longer than the passages)
MAX_DEPTH = 8

# a numeral followed by 是 inside a paragraph; the preceding character must not make it a word (统一是, 第一是, 之一是)
_INLINE = re.compile(rf"(?<![{CN_NUM}])([{CN_NUM}]{{1,3}})是")
_NOT_BEFORE = set("第之统唯单同万专如不合归划整逐为即总或就也还正都只百千周星初月年号期批个是这每其")

_SENT_END = "。！？!?；;"
# a colon followed by a space ends a sentence too: in a reply whose line breaks were lost (…委员: 您提出的…收悉,现答复
#如下: 近年来,…), the salutation, the acknowledgement and the text each stand alone
_SENT_RE = re.compile(rf"(?:[^{_SENT_END}\n:：]|[:：](?![ \t\u3000]))*(?:[{_SENT_END}]+[”’\"』」）)]*|[:：][ \t\u3000]+|$)")


def split_sentences(text: str) -> list[str]:
    """Split at 。！？；(and ASCII ! ? ;), keeping the delimiter and any closing quote with the sentence.
    ''.join(result) == text."""
    out = [m.group(0) for m in _SENT_RE.finditer(text) if m.group(0)]
    return out


def _ordinal(rank: int, token: str) -> int:
    if rank == 5:
        return _CIRCLED.index(token) + 1
    return cn_to_int(token.lstrip("第"))


def match_marker(line: str) -> tuple[int, int] | None:
    """(rank, ordinal) of a line's leading outline marker, or None."""
    for rank, pat in _MARKERS:
        m = pat.match(line)
        if m:
            token = next(g for g in m.groups() if g)
            if rank == 3 and re.match(r"^\d{1,2}[.．、]\d", line):
                continue  # 1.5亿元 is a number, not a heading
            if rank == 1 and len(line) < 3:
                continue
            return rank, _ordinal(rank, token)
    return None


def short_label(text: str, limit: int = 40) -> str:
    """The heading part of a paragraph: its first clause, without the final stop."""
    first = re.split(r"[。；;！？!?：:]", text, maxsplit=1)[0].strip()
    if len(first) > limit:
        comma = re.split(r"[，,]", first, maxsplit=1)[0]
        first = comma if 4 <= len(comma) <= limit else first[: limit - 1] + "…"
    return first


# ---------------------------------------------------------------- boilerplate
_BOILER_PATTERNS = [
    r"^(首页|当前位置|您的位置|您现在的位置)\s*[>＞›»/：:]",
    r"[>＞›»]\s*(政务公开|信息公开|建议提案|政策文件|通知公告|政务服务)",
    r"^(来源|信息来源|发布时间|发布日期|发文日期|成文日期|编辑|作者|责任编辑|浏览次数|访问量|点击数|阅读次数|字号|字体|分享|分享到|打印|关闭|索引号|主题分类|发布机构|文号)\s*[:：]",
    r"^(附件下载|附件|相关附件|相关链接|相关文件)\s*[:：]?\s*$",
    r"^(主办单位|承办单位|主办|承办|技术支持|网站标识码|网站地图|联系我们|版权所有|备案号|地址|邮编|联系电话|电话|传真|邮箱|电子邮箱|工作人员|联系人)\s*[:：]",
    r"(ICP备|公网安备|网站标识码|版权所有|Copyright|©)",
    r"^(时间|日期)\s*[:：].{0,40}(来源|浏览次数|点击数|访问量)\s*[:：]",  # a portal page's header line
    r"^【?\s*(字体|字号)\s*[:：]?\s*[大中小]",
    r"^(打印本页|关闭窗口|返回顶部|上一篇|下一篇|扫一扫在手机打开当前页|分享到[:：]?)",
    r"^(微信|微博|QQ空间)(\s+(微信|微博|QQ空间))*\s*$",
]
_BOILER_RE = [re.compile(p, re.I) for p in _BOILER_PATTERNS]


def is_boilerplate(line: str) -> bool:
    if len(line) > 120:
        return False
    if any(p.search(line) for p in _BOILER_RE):
        return True
    # bulleted header fields of a portal page (• 2024-06-28, • 人大建议, • 005253103/2024-00020)
    if line.startswith(("•", "·", "●")) and len(line) <= 40:
        return True
    return False


# ---------------------------------------------------------------- metadata
_ISSUER_RE = re.compile(
    r"([\u4e00-\u9fff]{2,8}(?:省|市|自治区|县|区)(?:人民政府)?[\u4e00-\u9fff]{0,16}?"
    r"(?:局|厅|委员会|委|办公室|办|人民政府|政府|中心|管委会|管理委员会))"
)


_DATE_RES = [
    re.compile(r"(20\d{2}|19\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"),
    re.compile(r"(20\d{2}|19\d{2})[-/.](\d{1,2})[-/.](\d{1,2})"),
]


def _find_date(s: str) -> str:
    for rx in _DATE_RES:
        m = rx.search(s)
        if m:
            y, mo, d = (int(x) for x in m.groups())
            if 1 <= mo <= 12 and 1 <= d <= 31:
                return f"{y:04d}-{mo:02d}-{d:02d}"
    return ""


_TITLE_RE = re.compile(r"[《“\"「]\s*(关于[^》”\"」\n]{2,120}?(?:建议|提案|议案|意见|建议案|提议))\s*[》”\"」]")
_TITLE_LOOSE_RE = re.compile(r"(关于[^，,。\n]{2,80}?(?:的建议|的提案|建议提案|的议案))")
_NUMBER_RE = re.compile(r"第\s*([A-Za-z]{0,4}[（(〔\[]?[A-Za-z0-9]{0,6}[)）〕\]]?[A-Za-z0-9\-]{2,16})\s*号")
_ADDRESSEE_RE = re.compile(r"^(?:尊敬的)?\s*([^\s:：，,。]{2,30}?)\s*[:：]\s*$")


def extract_meta(raw: RawFile, header: dict[str, str], lines: list[str], boiler: list[str]) -> DocMeta:
    meta = DocMeta(doc_id=raw.doc_id, path=raw.path, content_hash=raw.content_hash, source=header.get("source", ""))
    full = "\n".join(lines)
    head = "\n".join(lines[:12])
    # issuing body: 来源: line, portal header bullets, the signature near the end
    issuer = ""
    for b in boiler:
        m = re.match(r"^来源\s*[:：]\s*(\S+)", b)
        if m and _ISSUER_RE.fullmatch(m.group(1).split()[0]):
            issuer = m.group(1).split()[0]
            break
    if not issuer:
        for b in boiler:
            s = b.lstrip("•·● ").strip()
            if _ISSUER_RE.fullmatch(s):
                issuer = s
                break
    if not issuer:
        for line in reversed(lines[-6:]):
            s = line.strip()
            if len(s) <= 30 and _ISSUER_RE.fullmatch(s):
                issuer = s
                break
    if not issuer:
        m = re.search(r"(?:发布机构|发文机关|来源)\s*[:：]\s*([\u4e00-\u9fff]{4,30}(?:局|厅|委员会|办公室|政府))", "\n".join(boiler))
        if m:
            issuer = m.group(1)
    meta.issuer = issuer
    # place
    city = header.get("city", "").strip()
    if city:
        # "上海(市经济信息化委)", "临湘(湖南岳阳下辖县级市)": the name, and maybe the issuing body in brackets
        m = re.match(r"^([^（(]+)[（(]([^)）]*)[)）]", city)
        if m:
            city, note = m.group(1).strip(), m.group(2).strip()
            if not issuer and re.search(r"(局|厅|委|办|政府)", note):
                short = re.sub(r"(省|市|自治区)$", "", city)
                issuer = short + note if note[:1] in "省市" else note
                meta.issuer = issuer
        city = normalise_place(city)
    if not city and issuer:
        city = place_prefix(issuer)
    if not city:
        city = dominant_place(full)
    meta.city = city
    # addressee: the salutation line "XX代表:" near the top
    for line in lines[:10]:
        m = _ADDRESSEE_RE.match(line.strip())
        if m and not is_boilerplate(line):
            meta.addressee = m.group(1)
            break
    # title and number
    m = _TITLE_RE.search(head) or _TITLE_RE.search(full[:3000])
    if m:
        meta.title = re.sub(r"\s+", "", m.group(1))
    else:
        m = _TITLE_LOOSE_RE.search(head)
        if m:
            meta.title = m.group(1)
    m = _NUMBER_RE.search(head + "\n" + "\n".join(boiler[:8]))
    if m:
        meta.number = m.group(1)
    # date: the signature date at the end, else 发布时间, else the header
    date = ""
    for line in reversed(lines[-5:]):
        if len(line.strip()) <= 20:
            date = _find_date(line)
            if date:
                break
    if not date:
        for b in boiler:
            if re.search(r"(发布|成文|发文)(时间|日期)", b):
                date = _find_date(b)
                if date:
                    break
    if not date:
        for b in boiler[:10]:
            date = _find_date(b)
            if date:
                break
    if not date:  # "…的答复 (发布日期:2023年05月25日 文号:…)" in the first lines of the text
        for line in lines[:5]:
            if re.search(r"(发布|成文|发文|答复)(时间|日期)|(?<!提交)(?<!提出)(?<!办结)(时间|日期)\s*[:：]", line):
                date = _find_date(line)
                if date:
                    break
    if not date:  # the publication date in the page address: …/20230525/…, …/t20251113_…, …/art/2020/9/9/…, …/2025/01-03/…
        m = (re.search(r"[/_t]((?:19|20)\d{2})(\d{2})(\d{2})(?=[/_.])", meta.source)
             or re.search(r"/((?:19|20)\d{2})/(\d{1,2})[/-](\d{1,2})(?=[/_.])", meta.source))
        if m and 1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= 31:
            date = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    meta.date = date
    return meta


# ---------------------------------------------------------------- outline
@dataclass
class _Frame:
    rank: int
    ordinal: int
    section: Section


def _new_section(label: str, level: int) -> Section:
    return Section(label=label, level=level)


def _append_text(sec: Section, text: str) -> None:
    """Add body text to a section, keeping document order when it already has children."""
    if sec.children:
        sec.children.append(Section(label="", level=sec.level + 1, text=text))
    else:
        sec.text = f"{sec.text}\n{text}" if sec.text else text


@dataclass
class _Inline:
    start: int
    ordinal: int


def find_inline_enumeration(text: str, first: int = 1, from_pos: int = 0) -> list[_Inline]:
    """Positions of a run first是, first+1是, … inside text (at least two items when first == 1)."""
    cands: list[_Inline] = []
    for m in _INLINE.finditer(text, from_pos):
        pos = m.start()
        prev = text[pos - 1] if pos > 0 else ""
        if prev and prev in _NOT_BEFORE:
            continue
        cands.append(_Inline(pos, cn_to_int(m.group(1))))
    run: list[_Inline] = []
    expected = first
    for c in cands:
        if c.ordinal == expected:
            run.append(c)
            expected += 1
    if first == 1 and len(run) < 2:
        return []
    return run


def _split_inline(sec: Section, parent_rank: int) -> list[Section]:
    """Split a paragraph-section's text at in-paragraph enumerations.

    Returns extra *sibling* sections (when the paragraph continues its own sequence, 沈阳's 一是…二是…
    in one paragraph); nested enumerations (一是 inside an item) become children of `sec`."""
    text = sec.text
    siblings: list[Section] = []
    lead = re.match(rf"^([{CN_NUM}]{{1,3}})是", text)
    if lead and parent_rank == 6:
        own = cn_to_int(lead.group(1))
        body_from = len(lead.group(0))
        cont = find_inline_enumeration(text, first=own + 1, from_pos=body_from)
        nested = find_inline_enumeration(text, first=1, from_pos=body_from)
        if cont and not (nested and nested[0].start < cont[0].start):
            cuts = [c.start for c in cont] + [len(text)]
            sec.text = text[: cuts[0]].rstrip()
            for a, b in zip(cuts, cuts[1:]):
                part = text[a:b].strip()
                sib = Section(label=short_label(part), level=sec.level, text=part)
                siblings.append(sib)
            for s in [sec, *siblings]:
                _nest_inline(s, from_pos=len(re.match(rf"^[{CN_NUM}]{{1,3}}是", s.text).group(0)) if re.match(rf"^[{CN_NUM}]{{1,3}}是", s.text) else 0)
            return siblings
        _nest_inline(sec, from_pos=body_from)
        return siblings
    _nest_inline(sec, from_pos=0)
    return siblings


def _nest_inline(sec: Section, from_pos: int) -> None:
    text = sec.text
    run = find_inline_enumeration(text, first=1, from_pos=from_pos)
    if not run:
        return
    cuts = [r.start for r in run] + [len(text)]
    intro = text[: cuts[0]].strip()
    sec.text = intro
    for a, b in zip(cuts, cuts[1:]):
        part = text[a:b].strip()
        if part:
            sec.children.append(Section(label=short_label(part), level=sec.level + 1, text=part))


_CLOSING_START = re.compile(r"^(下一步|感谢|再次感谢|特此|此复|专此|衷心感谢|欢迎|希望.{0,10}(继续|一如既往))")


def _is_signature(line: str) -> bool:
    s = line.strip()
    return bool(s) and len(s) <= 30 and (bool(_find_date(s)) or bool(_ISSUER_RE.fullmatch(s)) or s in {"此复", "特此答复", "特此函复"})


def parse(raw: RawFile) -> Document:
    text = unicodedata.normalize("NFC", raw.text)
    lines_in = text.split("\n")
    header: dict[str, str] = {}
    # optional `source:` / `city:` header lines (shared/more-replies)
    i = 0
    while i < len(lines_in) and i < 6:
        m = re.match(r"^\s*(source|city|title|date|issuer)\s*:\s*(.*)$", lines_in[i], re.I)
        if m:
            header[m.group(1).lower()] = m.group(2).strip()
            i += 1
        elif not lines_in[i].strip() and header:
            i += 1
            break
        else:
            break
    body_lines = lines_in[i:]
    paras: list[str] = []
    boiler: list[str] = []
    for line in body_lines:
        s = line.replace("\u3000", " ").replace("\xa0", " ").strip()
        s = re.sub(r"[ \t]+", " ", s)
        if not s:
            continue
        if is_boilerplate(s):
            boiler.append(s)
            continue
        paras.append(s)

    meta = extract_meta(raw, header, paras, boiler)
    if header.get("date") and not meta.date:
        meta.date = _find_date(header["date"]) or header["date"]
    if header.get("title") and not meta.title:
        meta.title = header["title"]
    if header.get("issuer") and not meta.issuer:
        meta.issuer = header["issuer"]

    # closing run: signature lines, and a final plain paragraph starting with 下一步/感谢…
    closing_from = len(paras)
    j = len(paras) - 1
    while j >= 0 and _is_signature(paras[j]):
        j -= 1
    closing_from = j + 1
    if j >= 0 and _CLOSING_START.match(paras[j]) and match_marker(paras[j]) is None:
        closing_from = j
    first_heading = next((k for k, p in enumerate(paras) if (mk := match_marker(p)) and mk[0] <= 3), None)
    if first_heading is None:
        first_heading = next((k for k, p in enumerate(paras) if match_marker(p)), None)
    if first_heading is not None and closing_from <= first_heading:
        closing_from = len(paras)

    sections: list[Section] = []
    preamble = Section(label="前言", level=0)
    stack: list[_Frame] = []
    end_body = closing_from
    for k, para in enumerate(paras[:end_body]):
        mk = match_marker(para) if first_heading is not None and k >= first_heading else None
        if mk is None:
            if not stack:
                _append_text(preamble, para)
            else:
                top = stack[-1].section
                tmp = Section(label="", level=top.level + 1, text=para)
                _nest_inline(tmp, from_pos=0)
                if tmp.children:
                    if tmp.text:
                        _append_text(top, tmp.text)
                    top.children.extend(tmp.children)
                else:
                    _append_text(top, para)
            continue
        rank, ordinal = mk
        while stack and stack[-1].rank > rank:
            stack.pop()
        nested = False
        if stack and stack[-1].rank == rank:
            # same kind of marker: sibling (next ordinal), or a restart nested under the previous item
            placed = False
            depth = len(stack) - 1
            while depth >= 0 and stack[depth].rank == rank:
                if ordinal == stack[depth].ordinal + 1:
                    del stack[depth:]
                    placed = True
                    break
                depth -= 1
            if not placed:
                if ordinal == 1 and len(stack) < MAX_DEPTH:
                    nested = True
                else:
                    stack.pop()
        parent = stack[-1].section if stack else None
        level = (parent.level + 1) if parent else 1
        is_heading_only = len(para) <= 50 and not re.search(r"[。；;！？!?]", para[:-1] if para else para) and rank <= 3
        label = para.rstrip("。；;:：") if is_heading_only else short_label(para)
        sec = Section(label=label, level=level, text="" if is_heading_only else para, heading=para if is_heading_only else "")
        new_secs = [sec]
        if not is_heading_only:
            new_secs += _split_inline(sec, rank)
        for s in new_secs:
            if parent is None:
                sections.append(s)
            else:
                parent.children.append(s)
        last = new_secs[-1]
        last_ordinal = ordinal + len(new_secs) - 1
        stack.append(_Frame(rank, last_ordinal, last))
        _ = nested
    closing = Section(label="结语", level=1)
    for para in paras[end_body:]:
        _append_text(closing, para)
    out = []
    if preamble.text or preamble.children:
        out.append(preamble)
    out.extend(sections)
    if closing.text:
        out.append(closing)
    cleaned = "\n".join(paras)
    return Document(meta=meta, sections=out, boilerplate=boiler, text=cleaned)


def iter_sections(sections: list[Section], path: tuple[str, ...] = ()) -> "list[tuple[tuple[str, ...], Section]]":
    """Depth-first (path, section) pairs in document order."""
    out: list[tuple[tuple[str, ...], Section]] = []
    for s in sections:
        p = path + ((s.label,) if s.label else ())
        out.append((p, s))
        out.extend(iter_sections(s.children, p))
    return out
