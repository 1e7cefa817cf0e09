"""Pure rendering of the chat's state: HTML for the page, plain text for Copy, Markdown for Export, the
comparison table (rows, CSV, XLSX). No Gradio here; everything is a function of Turns and tested directly.

Actions inside a chat message are links `#act-<name>-<turn>[-<arg>]` (the chat's sanitiser keeps class,
href and title, nothing else); static/app.js handles them: copy / md (in the browser, from the hidden
store rendered by `render_store`), and the server-side ones (unfilter, ask) through a hidden bridge.
"""
from __future__ import annotations

import csv
import html
import io
import re
import zipfile
from typing import Any, Iterable

from .state import Turn

NOT_FOUND_TAG = "⚠ 未找到依据 · no supported answer in the replies"
TABLE_HEADERS = ["城市", "措施", "数字/标准", "来源"]


def _e(s: Any) -> str:
    return html.escape(str(s or ""), quote=True)


def cite_title(c: dict) -> str:
    """'[n] city · issuer · 《title》 · section' (hover text; the reference line in copies and exports)."""
    bits = [c.get("city"), c.get("issuer"), c.get("title") and f"《{c['title']}》", c.get("section")]
    return f"[{c['n']}] " + " · ".join(b for b in bits if b)


MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,，、]\s*\d{1,3})*)\]")


def _marker_nums(m: re.Match) -> list[int]:
    return [int(x) for x in re.split(r"\s*[,，、]\s*", m.group(1))]


def markers_html(text: str, citations: list[dict], turn: int) -> str:
    """Escape text and turn [n] (and [1,2]) into hoverable, clickable citation markers."""
    by_n = {int(c["n"]): c for c in citations}
    out, pos = [], 0
    for m in MARKER.finditer(text):
        nums = _marker_nums(m)
        if not all(n in by_n for n in nums):
            continue
        out.append(_e(text[pos : m.start()]))
        for n in nums:
            out.append(f'<a class="cite" href="#src-{turn}-{n}" title="{_e(cite_title(by_n[n]))}">[{n}]</a>')
        pos = m.end()
    out.append(_e(text[pos:]))
    return "".join(out).replace("\n", "<br>")


def fmt_ms(v: float) -> str:
    return f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:.0f} ms"


# ---------------------------------------------------------------------- figures and the comparison table
_FIGURE = re.compile(
    r"(?:最高|不超过|不低于|超过|累计|达到?|共)?"
    r"\d+(?:[.,]\d+)*\s*(?:万亿|亿|万|千)?\s*(?:元|户|家|笔|人次|人|名|个百分点|%|％|个|项|次|倍|场|套|张|平方米|亩|余户|余家)"
    r"|百分之[一二三四五六七八九十零〇两\d.]+"
)
_YEARLIKE = re.compile(r"^(?:19|20)\d{2}$")


def figures(text: str) -> list[str]:
    """Figures with their unit, verbatim from text (17.2万套, 最高100万元, 1.59亿元, 30%)."""
    out = []
    for m in _FIGURE.finditer(text or ""):
        f = m.group(0).strip()
        digits = re.sub(r"\D", "", f)
        if digits and _YEARLIKE.match(digits) and not re.search(r"[元户家%％]", f):
            continue
        if f not in out:
            out.append(f)
    return out


def comparison_rows(turn: Turn) -> list[dict[str, str]]:
    """One row per city of a comparative answer: 城市 | 措施 (the answer's sentences) | 数字/标准 (figures of
    the cited sentences, verbatim) | 来源 ([n] title · section). Empty for other answers."""
    if not turn.comparative:
        return []
    a = turn.answer or {}
    by_n = {int(c["n"]): c for c in a.get("citations") or []}
    rows: dict[str, dict[str, Any]] = {}
    for line in (a.get("answer") or "").split("\n"):
        nums = [n for m in MARKER.finditer(line) for n in _marker_nums(m) if n in by_n]
        if not nums:
            continue
        city = by_n[nums[0]].get("city") or by_n[nums[0]].get("doc_id") or "—"
        body = re.sub(r"^[^:：\[]{1,40}[:：]", "", line, count=1)  # the answer's '沈阳市:' label
        row = rows.setdefault(city, {"城市": city, "措施": [], "nums": []})
        row["措施"].append(MARKER.sub("", body).strip())
        row["nums"] += [n for n in nums if n not in row["nums"]]
    out = []
    for city, r in rows.items():
        figs: list[str] = []
        for n in r["nums"]:
            for f in figures(by_n[n].get("quote") or ""):
                if f not in figs:
                    figs.append(f)
        out.append({
            "城市": city,
            "措施": " ".join(x for x in r["措施"] if x),
            "数字/标准": "；".join(figs) or "—",
            "来源": " ".join(f"[{n}] 《{by_n[n].get('title') or by_n[n].get('doc_id')}》 § {by_n[n].get('section') or '—'}" for n in r["nums"]),
            "_nums": r["nums"],
        })
    return out


def rows_table(rows: list[dict]) -> list[list[str]]:
    return [[r[h] for h in TABLE_HEADERS] for r in rows]


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(TABLE_HEADERS)
    w.writerows(rows_table(rows))
    return "\ufeff" + buf.getvalue()  # BOM: Excel opens UTF-8 CSV with Chinese correctly


def _col(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(65 + r) + s
    return s


def rows_xlsx(rows: list[dict]) -> bytes:
    """A minimal one-sheet .xlsx (inline strings), without a spreadsheet library."""
    data = [TABLE_HEADERS, *rows_table(rows)]
    xml_rows = []
    for ri, row in enumerate(data, start=1):
        style = ' s="1"' if ri == 1 else ""
        cells = "".join(
            f'<c r="{_col(ci)}{ri}" t="inlineStr"{style}><is><t xml:space="preserve">{html.escape(str(v), quote=False)}</t></is></c>'
            for ci, v in enumerate(row)
        )
        xml_rows.append(f'<row r="{ri}">{cells}</row>')
    widths = '<cols><col min="1" max="1" width="12" customWidth="1"/><col min="2" max="2" width="80" customWidth="1"/>' \
             '<col min="3" max="3" width="30" customWidth="1"/><col min="4" max="4" width="60" customWidth="1"/></cols>'
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'{widths}<sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
    )
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "</Types>",
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="对比" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>'
        "</Relationships>",
        "xl/styles.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<fonts count="2"><font><sz val="11"/></font><font><b/><sz val="11"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border/></borders><cellStyleXfs count="1"><xf/></cellStyleXfs>'
        '<cellXfs count="2"><xf applyAlignment="1"><alignment wrapText="1" vertical="top"/></xf>'
        '<xf fontId="1" applyFont="1"/></cellXfs></styleSheet>',
        "xl/worksheets/sheet1.xml": sheet,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in files.items():
            z.writestr(name, body)
    return buf.getvalue()


# ---------------------------------------------------------------------- one chat message
def _actions_html(turn: Turn, i: int) -> str:
    links = [
        f'<a class="act" href="#act-copy-{i}" title="复制答案和参考来源（纯文本）· copy the answer and its references as text">复制 Copy</a>',
        f'<a class="act" href="#act-md-{i}" title="下载这条答案（Markdown，含引用段落）· download this answer as Markdown">⬇ Markdown</a>',
    ]
    return '<div class="actions">' + " ".join(links) + "</div>"


def _hints_html(turn: Turn, i: int) -> str:
    out = []
    for j, h in enumerate(turn.hints):
        act = ""
        if h.get("action") == "unfilter":
            act = f' <a class="act act-strong" href="#act-unfilter-{i}">→ 在全部答复中搜索 Search all replies</a>'
        elif h.get("action") == "ask" and h.get("question"):
            act = f' <a class="act act-strong" href="#act-hint-{i}-{j}" title="{_e(h["question"])}">→ {_e(h["question"])}</a>'
        out.append(f'<div class="hint hint-{_e(h.get("kind", "info"))}">{_e(h.get("text", ""))}{act}</div>')
    return "".join(out)


def _suggestions_html(turn: Turn, i: int) -> str:
    if not turn.suggestions:
        return ""
    label = "可以这样问 · try a precise question:" if turn.overview else "接着问 · follow-up:"
    chips = " ".join(f'<a class="act chip" href="#act-ask-{i}-{j}">{_e(s)}</a>' for j, s in enumerate(turn.suggestions))
    return f'<div class="suggest"><span class="suggest-label">{label}</span> {chips}</div>'


def _table_html(rows: list[dict], citations: list[dict], i: int) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in TABLE_HEADERS)
    body = []
    for r in rows:
        src = " ".join(markers_html(f"[{n}]", citations, i) for n in r["_nums"])
        body.append(f"<tr><td>{_e(r['城市'])}</td><td>{_e(r['措施'])}</td><td>{_e(r['数字/标准'])}</td><td>{src}</td></tr>")
    return f'<table class="cmp"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_answer(turn: Turn, i: int) -> str:
    """One assistant message (single-line HTML so the chat's Markdown leaves it alone)."""
    head = _rewritten_html(turn)
    if turn.error:
        return f'<div class="rag-msg rag-error">{head}⚠ {_e(turn.error)}{_hints_html(turn, i)}</div>'
    if turn.pending:
        partial = turn.partial
        body = (_e(partial).replace("\n", "<br>") + '<span class="caret">▌</span>') if partial else f'<span class="pending">⏳ {_e(stage_label(turn))}</span>'
        status = f'<div class="stage">{_e(stage_label(turn))}</div>' if partial else ""
        return f'<div class="rag-msg streaming">{head}{status}{body}</div>'
    a = turn.answer or {}
    parts = ['<div class="rag-msg">', head, _hints_html(turn, i)]
    if turn.stopped and not a:
        parts.append(f'<div class="answer-text">{_e(turn.partial).replace(chr(10), "<br>")}</div>')
        who = f" ({_e(turn.model)})" if turn.model else ""
        parts.append(f'<div class="note stopped">■ 已停止 · stopped{who}: the answer above is incomplete and was not checked</div></div>')
        return "".join(parts)
    cits = a.get("citations") or []
    if a.get("abstained"):
        parts.append(f'<div class="abstain-tag">{NOT_FOUND_TAG}</div>')
    rows = comparison_rows(turn)
    if rows:
        parts.append('<div class="cmp-head">对比 · comparison (one row per city; sort and download below the chat)</div>')
        parts.append(_table_html(rows, cits, i))
    else:
        cls = "answer-text abstained" if a.get("abstained") else "answer-text"
        parts.append(f'<div class="{cls}">{markers_html(a.get("answer", ""), cits, i)}</div>')
    if a.get("unsupported"):
        parts.append(
            '<div class="warn">⚠ 以下数字未在引用段落中找到 · numbers not found in the cited passages: ' + _e("、".join(a["unsupported"])) + "</div>"
        )
    if a.get("unmarked"):
        parts.append(f'<div class="warn soft">⚠ {len(a["unmarked"])} 句无引用 · sentence(s) without a citation</div>')
    if a.get("note"):
        parts.append(f'<div class="note">ℹ {_e(a["note"])}</div>')
    parts.append(_model_answer_html(a))
    parts.append(_suggestions_html(turn, i))
    t = a.get("timings_ms") or {}
    keys = [k for k in ("retrieve", "answer", "first_token", "generate", "total") if k in t]
    foot = ""
    if keys:
        labels = {"retrieve": "检索 retrieve", "generate": "生成 generate", "answer": "作答 answer", "first_token": "首字 first token", "total": "总计 total"}
        prov = a.get("provider") or "extractive"
        foot = " · ".join(f"{labels[k]} {fmt_ms(t[k])}" for k in keys) + f" · {_e(prov)}"
    parts.append(f'<div class="timings">{foot}{_actions_html(turn, i)}</div>')
    parts.append("</div>")
    return "".join(parts)


STAGES = {"retrieve": "检索中 Searching…", "generate": "生成中 Generating", "verify": "核对中 Checking…"}


def stage_label(turn: Turn) -> str:
    """The stage really running: 检索 / 生成 (model, time to first token) / 核对."""
    stage = turn.stage or "retrieve"
    label = STAGES.get(stage, STAGES["retrieve"])
    if stage == "generate":
        bits = [turn.model] if turn.model else []
        if turn.first_token_ms is not None:
            bits.append(f"首字 first token {fmt_ms(turn.first_token_ms)}")
        label += f" ({' · '.join(bits)})…" if bits else "…"
    return label


def _model_answer_html(a: dict) -> str:
    """The model's own answer behind a toggle when the gate did not let it be the answer."""
    llm = a.get("llm") or {}
    if llm.get("shown") != "extractive" or not llm.get("text"):
        return ""
    fails = (llm.get("gate") or {}).get("failures") or []
    why = "".join(f"<li>{_e(f.get('rule'))}: {_e(f.get('detail'))}</li>" for f in fails)
    model = _e(llm.get("model") or llm.get("provider") or "LLM")
    return (f'<details class="llm-answer"><summary>模型的回答（未采用）· the model\'s answer ({model}), not used</summary>'
            f'<div class="llm-text">{_e(llm["text"]).replace(chr(10), "<br>")}</div>'
            + (f'<ul class="gate-fails">{why}</ul>' if why else "") + "</details>")


def _rewritten_html(turn: Turn) -> str:
    rq = turn.rewritten
    if rq and rq != turn.question:
        return f'<div class="rewritten">↪ 问题理解为 understood as: <b>{_e(rq)}</b></div>'
    return ""


def chat_messages(turns: list[Turn]) -> list[dict]:
    msgs: list[dict] = []
    for i, t in enumerate(turns):
        msgs.append({"role": "user", "content": _e(t.question)})
        msgs.append({"role": "assistant", "content": render_answer(t, i)})
    return msgs


# ---------------------------------------------------------------------- sources panel, full reply
def highlight(passage: str, quote: str) -> str:
    """The passage, escaped, with each cited sentence (Citation.quote lines) in <mark>."""
    quotes = [q.strip() for q in (quote or "").split("\n") if q.strip()]
    spans: list[tuple[int, int]] = []
    for q in quotes:
        i = passage.find(q)
        if i >= 0:
            spans.append((i, i + len(q)))
    spans.sort()
    out, pos = [], 0
    for s, e in spans:
        if s < pos:
            continue
        out.append(_e(passage[pos:s]))
        out.append(f"<mark>{_e(passage[s:e])}</mark>")
        pos = e
    out.append(_e(passage[pos:]))
    return "".join(out).replace("\n", "<br>")


BACK_LINK = '<a class="back-to-answer" href="#chat">↩ 返回答案 Back to the answer</a>'


def render_sources(turns: list[Turn], turn: int | None = None, selected: int | None = None) -> str:
    """The sources panel for one answer (default: the latest answered one): the cited passages, then the
    other retrieved passages folded (the k setting decides how many)."""
    turns = turns or []
    answered = [i for i, t in enumerate(turns) if t.answer]
    if turn is None or not (0 <= turn < len(turns)) or not turns[turn].answer:
        turn = answered[-1] if answered else None
    if turn is None:
        return f'<div id="sources-inner">{BACK_LINK}<div class="sources-empty">答案的来源会显示在这里。Sources of the answer appear here.</div></div>'
    t = turns[turn]
    a = t.answer or {}
    cits = a.get("citations") or []
    head = f'<div class="sources-head">{BACK_LINK}来源 Sources · #{turn + 1} <span class="q">{_e(t.asked)}</span></div>'
    items = []
    for c in cits:
        n = int(c["n"])
        sel = " selected" if selected == n else ""
        meta = " · ".join(_e(x) for x in (c.get("issuer"), c.get("date")) if x)
        items.append(
            f'<div class="src{sel}" id="src-{turn}-{n}" data-turn="{turn}" data-n="{n}">'
            f'<div class="src-top"><span class="src-n">[{n}]</span> <span class="src-city">{_e(c.get("city") or "—")}</span>'
            f'<span class="src-meta">{meta}</span></div>'
            f'<div class="src-title">《{_e(c.get("title") or c.get("doc_id"))}》 <span class="src-doc">{_e(c.get("doc_id"))}</span></div>'
            f'<div class="src-section">§ {_e(c.get("section") or "—")}</div>'
            f'<div class="src-text">{highlight(c.get("text") or "", c.get("quote") or "")}</div>'
            f'<a class="open-full" href="#fulldoc" data-cite-turn="{turn}" data-cite-n="{n}" data-cite-full="1">'
            f"全文 › open the full reply at this section</a></div>"
        )
    if not cits:
        msg = "没有引用：资料中未找到依据。No passages cited: the replies do not answer this." if a.get("abstained") else "没有引用。No citations."
        items.append(f'<div class="sources-empty">{msg}</div>')
    if t.retrieved:
        more = []
        for h in t.retrieved:
            more.append(
                f'<div class="src retrieved" data-turn="{turn}" data-rank="{int(h.get("rank", 0))}">'
                f'<div class="src-top"><span class="src-n">#{int(h.get("rank", 0))}</span> <span class="src-city">{_e(h.get("city") or "—")}</span>'
                f'<span class="src-meta">{_e(h.get("issuer"))}</span></div>'
                f'<div class="src-title">《{_e(h.get("title") or h.get("doc_id"))}》 <span class="src-doc">{_e(h.get("doc_id"))}</span></div>'
                f'<div class="src-section">§ {_e(h.get("section") or "—")}</div>'
                f'<div class="src-text">{_e(h.get("text")).replace(chr(10), "<br>")}</div></div>'
            )
        items.append(
            f'<details class="more-hits"><summary>其余检索到的段落 · {len(t.retrieved)} more retrieved passage(s), not cited '
            f"(段落数 k)</summary>{''.join(more)}</details>"
        )
    return f'<div id="sources-inner">{head}{"".join(items)}</div>'


def render_fulldoc(generation, citation: dict | None) -> str:
    """The whole reply a citation comes from, chunks in order, the cited chunk highlighted (class 'cited')."""
    if not citation:
        return '<div class="sources-empty">选择一个来源查看全文。Pick a source to read the full reply.</div>'
    doc_id = citation.get("doc_id")
    rows = generation.rows_of(doc_id) if generation is not None else []
    if not rows:
        return f'<div class="sources-empty">文档 {_e(doc_id)} 已不在索引中。The document is no longer in the index.</div>'
    meta = generation.docs.get(doc_id)
    bits = [meta.city, meta.issuer, meta.date] if meta else []
    head = (
        f'<div class="fd-head"><b>《{_e((meta and meta.title) or doc_id)}》</b><br>'
        f'{" · ".join(_e(b) for b in bits if b)} <span class="src-doc">{_e(doc_id)}</span></div>'
    )
    out, last_section = [head], None
    cited_id = citation.get("chunk_id") or ""
    for r in sorted(rows, key=lambda r: generation.chunks[r].ordinal):
        ch = generation.chunks[r]
        if ch.section != last_section and ch.section:
            out.append(f'<div class="fd-sec">§ {_e(ch.section)}</div>')
        last_section = ch.section
        cited = ch.chunk_id == cited_id or (not cited_id and ch.text == citation.get("text"))
        body = highlight(ch.text, citation.get("quote") or "") if cited else _e(ch.text).replace("\n", "<br>")
        out.append(f'<div class="fd-chunk{" cited" if cited else ""}" data-chunk="{_e(ch.chunk_id)}">{body}</div>')
    return '<div class="fd">' + "".join(out) + "</div>"


# ---------------------------------------------------------------------- copy and export
def _answer_plain(turn: Turn) -> str:
    a = turn.answer or {}
    if turn.error:
        return f"⚠ {turn.error}"
    if not a:
        return turn.partial + ("\n■ 已停止 · stopped" if turn.stopped else "")
    text = a.get("answer") or ""
    if a.get("abstained"):
        text = f"{NOT_FOUND_TAG}\n{text}"
    return text


def copy_text(turn: Turn) -> str:
    """What Copy puts on the clipboard: the answer as plain text, the numbered references underneath."""
    lines = [_answer_plain(turn).strip()]
    if turn.rewritten and turn.rewritten != turn.question:
        lines.insert(0, f"问题 Q: {turn.rewritten}")
    cits = turn.citations
    if cits:
        lines.append("")
        lines.append("参考 References:")
        lines += [cite_title(c) for c in cits]
    note = (turn.answer or {}).get("note")
    if note:
        lines.append(f"\nℹ {note}")
    return "\n".join(lines).strip() + "\n"


def _md_escape(s: str) -> str:
    return re.sub(r"([\\`*_<>#|])", r"\\\1", s or "")


def turn_markdown(turn: Turn, i: int | None = None, level: int = 2) -> str:
    """One question and answer as Markdown: the answer (a table for comparative answers), the references
    (city, issuer, title, section, date, document id) and the quoted passage of each."""
    h = "#" * level
    num = f"{i + 1}. " if i is not None else ""
    out = [f"{h} {num}{_md_escape(turn.question)}", ""]
    if turn.rewritten and turn.rewritten != turn.question:
        out += [f"*问题理解为 understood as:* {_md_escape(turn.rewritten)}", ""]
    for hint in turn.hints:
        out += [f"> {_md_escape(hint.get('text', ''))}", ""]
    rows = comparison_rows(turn)
    if rows:
        out.append("| " + " | ".join(TABLE_HEADERS) + " |")
        out.append("|" + "---|" * len(TABLE_HEADERS))
        for r in rows:
            out.append("| " + " | ".join(_md_escape(r[k]).replace("\n", " ") for k in TABLE_HEADERS) + " |")
        out.append("")
    else:
        out += [_md_escape(_answer_plain(turn)).replace("\n", "  \n"), ""]
    a = turn.answer or {}
    if a.get("note"):
        out += [f"*ℹ {_md_escape(a['note'])}*", ""]
    cits = turn.citations
    if cits:
        out += [f"{h}# 参考 References", ""]
        for c in cits:
            meta = " · ".join(x for x in (c.get("city"), c.get("issuer"), c.get("date")) if x)
            out.append(f"**[{c['n']}]** {_md_escape(meta)} — 《{_md_escape(c.get('title') or c.get('doc_id'))}》 · § {_md_escape(c.get('section') or '—')} · `{c.get('doc_id')}`")
            out.append("")
            quote = (c.get("quote") or "").strip()
            if quote:
                out += ["> " + _md_escape(q) + "  " for q in quote.split("\n") if q.strip()]
                out.append("")
            out.append("<details><summary>段落全文 passage</summary>\n\n" + _md_escape(c.get("text") or "") + "\n\n</details>")
            out.append("")
    if (a.get("timings_ms") or {}).get("total"):
        out += [f"*{a.get('provider') or 'extractive'} · {fmt_ms(a['timings_ms']['total'])} · {turn.time}*", ""]
    return "\n".join(out)


def conversation_markdown(turns: Iterable[Turn], title: str = "") -> str:
    turns = [t for t in turns if not t.pending]
    head = f"# {_md_escape(title or '对话 Conversation')}\n\n*政府答复问答 · cited answers from government replies*\n"
    return head + "\n" + "\n".join(turn_markdown(t, i) for i, t in enumerate(turns))


def render_store(turns: list[Turn], title: str = "") -> str:
    """Hidden per-turn copy text and Markdown for the browser's Copy and Download (static/app.js reads them)."""
    parts = []
    for i, t in enumerate(turns):
        if t.pending:
            continue
        parts.append(f'<textarea class="clip-copy" data-turn="{i}">{_e(copy_text(t))}</textarea>')
        parts.append(f'<textarea class="clip-md" data-turn="{i}">{_e(turn_markdown(t, None, level=1))}</textarea>')
    parts.append(f'<textarea class="clip-md-all">{_e(conversation_markdown(turns, title))}</textarea>')
    return '<div class="clip-store">' + "".join(parts) + "</div>"


# ---------------------------------------------------------------------- coverage
def render_coverage(cov: dict[str, Any]) -> str:
    """What is indexed: places, issuers and years with counts."""
    if not cov.get("docs"):
        return '<div class="coverage sources-empty">索引为空 · the index is empty: add replies in the documents tab.</div>'

    def chips(items: list[tuple[str, int]]) -> str:
        return " ".join(f'<span class="cov-chip">{_e(k or "—")} <b>{n}</b></span>' for k, n in items)

    rows = [
        f'<div class="cov-total">{cov["docs"]} 篇答复 replies · {cov["chunks"]} 段 passages</div>',
        f'<div class="cov-row"><span class="cov-k">地区 places</span> {chips(cov["places"])}</div>',
        f'<div class="cov-row"><span class="cov-k">发文单位 issuers</span> {chips(cov["issuers"])}</div>',
        f'<div class="cov-row"><span class="cov-k">日期 dates</span> {chips(cov["years"])}'
        + (f' <span class="cov-range">{_e(cov["first"])} – {_e(cov["last"])}</span>' if cov.get("first") else "")
        + "</div>",
    ]
    if cov.get("updating"):
        rows.append(f'<div class="hint hint-indexing">⏳ {_e(cov["updating"])}</div>')
    return '<div class="coverage">' + "".join(rows) + "</div>"


__all__ = [
    "render_answer", "render_sources", "render_fulldoc", "chat_messages", "copy_text", "turn_markdown",
    "conversation_markdown", "render_store", "comparison_rows", "rows_csv", "rows_xlsx", "figures", "render_coverage",
    "highlight", "cite_title", "markers_html",
]
