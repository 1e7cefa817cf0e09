"""Stage 3 (rag.chunker): size limit, sentence boundaries, full coverage in order, context text."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.chunker import chunk_document, pack_sentences
from rag.config import ChunkerConfig
from rag.loader import read_file
from rag.parser import iter_sections, parse, split_sentences

REPO = Path(__file__).resolve().parent.parent
FILES = sorted((REPO / "data" / "replies").glob("*.txt")) + sorted((REPO / "data" / "more-replies").glob("*.txt"))
SENT_END = "。；！？!?;"
CLOSERS = "”’\"』」）)"
CONFIGS = [ChunkerConfig(), ChunkerConfig(max_chars=200, min_chars=50), ChunkerConfig(max_chars=120, min_chars=30)]


def _ws(s: str) -> str:
    return re.sub(r"\s+", "", s)


@pytest.fixture(scope="module")
def parsed():
    return {p.stem: parse(read_file(p)) for p in FILES}


def _lines(doc) -> list[str]:
    """The document's text lines (headings standing alone, then body lines) in outline order."""
    out = []
    for _, sec in iter_sections(doc.sections):
        for part in (getattr(sec, "heading", ""), sec.text):
            out += [ln.strip() for ln in part.split("\n") if ln.strip()]
    return out


def _section_text(doc) -> str:
    return "".join(getattr(s, "heading", "") + s.text for _, s in iter_sections(doc.sections))


def _cfg_id(c: ChunkerConfig) -> str:
    return f"max{c.max_chars}"


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_chunks_cover_the_document_in_order(parsed, cfg):
    for doc_id, doc in parsed.items():
        chunks = chunk_document(doc, cfg)
        assert chunks, doc_id
        assert _ws("".join(c.text for c in chunks)) == _ws(_section_text(doc)), doc_id
        assert [c.ordinal for c in chunks] == list(range(len(chunks)))
        assert [c.chunk_id for c in chunks] == [f"{doc_id}#{i}" for i in range(len(chunks))]
        assert all(c.text == c.text.strip() and c.text for c in chunks)


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_chunks_respect_max_chars_unless_one_sentence_is_longer(parsed, cfg):
    for doc_id, doc in parsed.items():
        for c in chunk_document(doc, cfg):
            if len(c.text) > cfg.max_chars:
                sents = [s for ln in c.text.split("\n") for s in split_sentences(ln) if s.strip()]
                assert len(sents) == 1, (doc_id, c.chunk_id, len(c.text), cfg.max_chars)


def _sentence_spans(line: str) -> list[tuple[int, int, int]]:
    """(start, end, original length) of each sentence of a line, offsets in the whitespace-free line."""
    spans, pos = [], 0
    for s in split_sentences(line):
        n = len(_ws(s))
        spans.append((pos, pos + n, len(s)))
        pos += n
    return spans


@pytest.mark.parametrize("cfg", CONFIGS, ids=_cfg_id)
def test_chunks_end_at_sentence_or_item_ends(parsed, cfg):
    """Every cut between two chunks is after 。；！？, at the end of a line/item, or inside one sentence
    that is itself longer than max_chars (the only case where a sentence may be split)."""
    for doc_id, doc in parsed.items():
        lines = _lines(doc)
        stream = "".join(_ws(ln) for ln in lines)
        line_ends, sentences, pos = set(), [], 0
        for ln in lines:
            for a, b, n in _sentence_spans(ln):
                sentences.append((pos + a, pos + b, n))
            pos += len(_ws(ln))
            line_ends.add(pos)
        chunks = chunk_document(doc, cfg)
        cut = 0
        for c in chunks[:-1]:
            cut += len(_ws(c.text))
            assert stream[:cut].endswith(_ws(c.text))
            if cut in line_ends or stream[:cut].rstrip(CLOSERS)[-1:] in SENT_END or cut in {b for a, b, n in sentences}:
                continue  # after 。；！？, at a line's end, or at a sentence end of split_sentences (…答复如下: then text)
            inside = [n for a, b, n in sentences if a < cut < b]
            assert inside and inside[0] > cfg.max_chars, (doc_id, c.chunk_id, c.text[-30:])


def test_default_chunks_of_the_bundled_replies_end_with_a_full_stop_or_a_line(parsed):
    for doc_id in ("shenyang", "yingkou", "liaoning", "tianjin", "zhengzhou"):
        doc = parsed[doc_id]
        lines = set(_lines(doc))
        for c in chunk_document(doc):
            last = c.text.split("\n")[-1].strip()
            assert last.rstrip(CLOSERS)[-1:] in SENT_END or last in lines or any(ln.endswith(last) for ln in lines), (c.chunk_id, last)


def test_shenyang_first_section_items_are_separate_chunks(parsed):
    chunks = chunk_document(parsed["shenyang"])
    first = [c for c in chunks if c.section_path and c.section_path[0].startswith("一、")]
    items = [
        "一是建立健全金融服务工作机制",
        "二是落实各项金融政策",
        "三是加大对重点领域金融支持",
        "四是加大创投基金供给",
        "五是研究开发知识产权证券化交易产品",
    ]
    assert list(dict.fromkeys(c.section_path[-1] for c in first)) == items
    for c in first:
        assert len(c.section_path) == 2
        starts = [it for it in items if it in c.text]
        assert len(starts) <= 1, (c.chunk_id, starts)  # never two items in one chunk
    # each item's chunk begins with the item itself
    for it in items:
        own = [c for c in first if c.section_path[-1] == it]
        assert it in own[0].text


def test_chunks_carry_document_metadata(parsed):
    doc = parsed["zhengzhou"]
    for c in chunk_document(doc):
        assert (c.doc_id, c.city, c.title, c.issuer, c.date) == ("zhengzhou", "郑州市", doc.meta.title, "郑州市工业和信息化局", doc.meta.date)


def test_context_text_has_city_title_and_section_path(parsed):
    for doc_id in ("shenyang", "yingkou", "tianjin"):
        doc = parsed[doc_id]
        for c in chunk_document(doc):
            ctx = c.context_text()
            assert doc.meta.city in ctx and doc.meta.title in ctx
            for label in c.section_path:
                assert label in ctx
            assert ctx.endswith(c.text)
    c = [c for c in chunk_document(parsed["yingkou"]) if "2000元" in c.text][0]
    head = c.context_text().split("\n")[0]
    assert "营口市" in head and "《关于促进我市中小企业创新发展的建议提案》" in head
    assert "5.引导企业全面提升竞争力" in head and "一、促进我市中小企业创新发展工作推进情况" in head


def test_boilerplate_never_reaches_chunks(parsed):
    for doc_id in ("tianjin", "zhengzhou", "liaoning"):
        for c in chunk_document(parsed[doc_id]):
            for gone in ("首页 >", "首页 >", "联系电话", "主办单位", "发布时间", "附件下载", "工作人员"):
                assert gone not in c.text, (c.chunk_id, gone)
    yk = "".join(c.text for c in chunk_document(parsed["yingkou"]))
    assert "通过“扫一扫”可获得最新惠企政策" in yk


def test_no_heading_is_cut_off_from_its_section(parsed):
    """A heading line that appears in a chunk belongs to that chunk's own section path."""
    for doc_id, doc in parsed.items():
        headings = {getattr(s, "heading", "") or s.label: path for path, s in iter_sections(doc.sections) if getattr(s, "heading", "")}
        for c in chunk_document(doc):
            for ln in c.text.split("\n"):
                if ln.strip() in headings:
                    path = headings[ln.strip()]
                    assert tuple(c.section_path[: len(path)]) == path, (c.chunk_id, ln, c.section_path)


def test_pack_sentences():
    text = "第一句话比较短。" * 10 + "最后一句。"
    pieces = pack_sentences(text, 40)
    assert "".join(pieces) == text
    assert all(len(p) <= 40 for p in pieces)
    assert all(p.endswith("。") for p in pieces)
    long = "这是一个没有句号但是有逗号的很长的句子," * 6
    pieces = pack_sentences(long, 50)
    assert "".join(pieces) == long and all(len(p) <= 50 for p in pieces)
    nopunct = "无" * 130
    pieces = pack_sentences(nopunct, 50)
    assert "".join(pieces) == nopunct and all(len(p) <= 50 for p in pieces)
