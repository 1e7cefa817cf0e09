"""Property tests (hypothesis) of the parser and chunker, and fuzzing of rag.loader.decode_bytes/read_file and
rag.parser.parse (hypothesis, plus atheris/libFuzzer when it is installed).

The properties, precisely:
- parse loses nothing but boilerplate: after the optional `source:`/`city:` header, the non-blank input lines
  (compared by textproc.normalise: NFKC, whitespace removed) are exactly doc.text's lines plus
  doc.boilerplate (as multisets), and each of the two is in input order;
- the chunks cover the document in order: normalise(chunk texts joined) == normalise(doc.text), i.e. the
  non-boilerplate lines joined. Heading lines are text (the chunker puts them in front of their section's
  first chunk); section labels are not (they are derived from the text);
- so together: normalise(chunks joined) == normalise(non-boilerplate input lines joined);
- chunks: ordinals 0..n-1, ids doc#i, non-empty stripped text, a section path, at most max_chars long (only a
  heading line standing alone, at most 50 characters and never cut, may exceed a max_chars below 50).

Fuzzing: any bytes/text; the only exception allowed is LoadError (with a reason) from the loader; parse and
chunk_document never raise. The number of inputs tried is printed and written to
tests/artifacts/fuzz_counts.json. More examples: RAG_FUZZ_EXAMPLES=20000 (default 400 per target).
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.chunker import chunk_document, pack_sentences  # noqa: E402
from rag.config import ChunkerConfig  # noqa: E402
from rag.loader import LoadError, decode_bytes, read_file  # noqa: E402
from rag.parser import is_boilerplate, parse, split_sentences  # noqa: E402
from rag.textproc import normalise  # noqa: E402
from rag.types import RawFile  # noqa: E402

REPLIES = REPO / "data" / "replies"
ARTIFACTS = REPO / "tests" / "artifacts"
EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "400"))
COUNTS: Counter[str] = Counter()

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
PROPS = settings(max_examples=max(200, EXAMPLES // 2), deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)


def raw(text: str, doc_id: str = "fuzz") -> RawFile:
    return RawFile(path=f"{doc_id}.txt", doc_id=doc_id, text=text, encoding="utf-8", fmt="txt", content_hash="0")


def record(name: str) -> None:
    COUNTS[name] += 1


# ------------------------------------------------------------------ strategies: text that looks like a reply
WORDS = [
    "中小企业", "融资", "服务", "加强", "推进", "政策", "支持", "创新", "发展", "营口市", "沈阳", "天津市", "补贴", "博士",
    "每月", "2000元", "1.5亿元", "2024年6月28日", "工业和信息化局", "专精特新", "小巨人", "首贷", "贷款", "担保",
    "代表", "委员", "建议", "答复如下", "收悉", "下一步", "感谢", "统一是", "之一是", "第一是", "唯一是", "ABC", "e5", " ",
]
PUNCT = ["。", "；", "！", "？", "，", "、", "：", ":", ";", "!", "?", ".", ",", "“", "”", "（", "）", "(", ")", "《", "》", "…"]
INLINE = ["一是", "二是", "三是", "四是", "十是", "十一是", "九十九是"]
MARKERS = [
    "一、", "二、", "三、", "十二、", "第一、", "（一）", "(二)", "（三）", "1.", "2、", "3．", "10.", "1.5", "（1）", "2)", "①", "②",
    "一是", "二是", "三是", "",
]
BOILER = [
    "来源:营口市工业和信息化局", "发布时间：2024-06-28", "首页 > 政务公开 > 建议提案", "附件:", "版权所有 © 2024", "• 人大建议",
    "打印本页 关闭窗口", "微信 微博", "联系电话:0417-1234567", "字号:大 中 小", "索引号:005253103/2024-00020",
]
SIGNATURES = ["营口市工业和信息化局", "2024年6月28日", "此复", "特此答复。", "沈阳市人民政府办公室"]
SPACES = [" ", "\u3000", "\xa0", "\t", "  "]

body = st.lists(st.one_of(st.sampled_from(WORDS), st.sampled_from(PUNCT), st.sampled_from(INLINE), st.sampled_from(SPACES)), max_size=40).map("".join)
long_run = st.tuples(st.sampled_from(["中", "企业", "融资服务"]), st.integers(1, 400), st.sampled_from(["", "。", "，"])).map(lambda t: t[0] * t[1] + t[2])
line = st.one_of(
    st.tuples(st.sampled_from(MARKERS), body).map("".join),
    st.tuples(st.sampled_from(MARKERS), long_run).map("".join),
    st.sampled_from(BOILER),
    st.sampled_from(SIGNATURES),
    st.sampled_from(SPACES),
    st.text(max_size=20),
)
reply_text = st.lists(line, max_size=40).map("\n".join)
chunker_cfg = st.sampled_from([ChunkerConfig(), ChunkerConfig(max_chars=120, min_chars=30), ChunkerConfig(max_chars=40, min_chars=10)])


def input_lines(text: str) -> list[str]:
    """The non-blank lines parse looks at (the first line here is never a header line), normalised."""
    return [n for n in (normalise(ln) for ln in text.split("\n")) if n]


def is_subsequence(sub: list[str], seq: list[str]) -> bool:
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


# ------------------------------------------------------------------ properties
@PROPS
@given(reply_text)
def test_parse_keeps_every_line_except_boilerplate_in_order(text):
    record("property parse")
    text = "答复如下:\n" + text  # a first line that is not a `source:` header
    doc = parse(raw(text))
    kept = [normalise(x) for x in doc.text.split("\n") if normalise(x)]
    boiler = [normalise(b) for b in doc.boilerplate]
    lines = input_lines(unicodedata_nfc(text))
    assert Counter(kept) + Counter(boiler) == Counter(lines)
    assert is_subsequence(kept, lines) and is_subsequence(boiler, lines)
    assert all(is_boilerplate(b) for b in doc.boilerplate)


def unicodedata_nfc(s: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFC", s)


@PROPS
@given(reply_text, chunker_cfg)
def test_chunks_cover_the_non_boilerplate_text_in_order(text, cfg):
    record("property chunks")
    text = "答复如下:\n" + text
    doc = parse(raw(text))
    chunks = chunk_document(doc, cfg)
    assert normalise("".join(c.text for c in chunks)) == normalise(doc.text)
    # the same, stated against the input: the input lines without the boilerplate ones, joined
    non_boiler = list(input_lines(unicodedata_nfc(text)))
    for b in doc.boilerplate:
        non_boiler.remove(normalise(b))
    assert normalise("".join(c.text for c in chunks)) == "".join(non_boiler)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert [c.chunk_id for c in chunks] == [f"fuzz#{i}" for i in range(len(chunks))]
    for c in chunks:
        assert c.text and c.text == c.text.strip()
        assert c.section_path and all(c.section_path)
        # at most max_chars, except a heading line standing alone (headings are at most 50 characters, never cut)
        assert len(c.text) <= cfg.max_chars or ("\n" not in c.text and len(c.text) <= 50), (len(c.text), c.text)


@PROPS
@given(st.text(max_size=3000), st.sampled_from([20, 60, 360]))
def test_pack_sentences_keeps_all_text_within_the_limit(text, max_chars):
    record("property pack_sentences")
    text = text.replace("\n", "")
    assert "".join(split_sentences(text)) == text
    pieces = pack_sentences(text, max_chars)
    assert "".join(pieces) == text
    assert all(len(p) <= max_chars for p in pieces)


# ------------------------------------------------------------------ fuzzing: parse and chunk any text
@FUZZ
@given(st.one_of(st.text(), reply_text, st.text(alphabet=st.characters(codec="utf-8"), min_size=100, max_size=5000)))
def test_fuzz_parse_and_chunk_never_raise(text):
    record("fuzz parse+chunk")
    doc = parse(raw(text))
    chunks = chunk_document(doc, ChunkerConfig(max_chars=120, min_chars=30))
    for c in chunks:
        c.context_text()
    assert normalise("".join(c.text for c in chunks)) == normalise(doc.text)


# ------------------------------------------------------------------ fuzzing: bytes to text
def _seeds() -> list[bytes]:
    texts = [p.read_text(encoding="utf-8")[:1500] for p in sorted(REPLIES.glob("*.txt"))]
    trad = "您提出的《關於促進我市中小企業創新發展的建議》已收悉,現答覆如下:一是制定出台民營經濟發展規劃。"
    out = [t.encode(enc) for t in texts[:3] for enc in ("utf-8", "utf-8-sig", "gb18030", "utf-16", "utf-16-le", "utf-32")]
    out.append(trad.encode("big5"))
    return out


SEEDS = _seeds()


@st.composite
def mutated(draw, seeds=SEEDS) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "nul", "bom", "splice"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(max_size=16))
        elif op == "nul":
            data[pos:pos] = b"\x00"
        elif op == "bom":
            data[0:0] = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"]))
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            data[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated()))
def test_fuzz_decode_bytes_returns_text_or_load_error(data):
    record("fuzz decode_bytes")
    try:
        text, enc = decode_bytes(data, "fuzz.txt")
    except LoadError as e:
        assert e.reason and "fuzz.txt" in str(e)
        return
    assert isinstance(text, str) and enc
    doc = parse(raw(text))
    chunk_document(doc)


# ------------------------------------------------------------------ fuzzing: files of every format
def _docx(text: str) -> bytes:
    import docx

    d = docx.Document()
    for ln in text.split("\n")[:20]:
        d.add_paragraph(ln)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def _pdf(text: str) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.setFont("STSong-Light", 10)
    for i, ln in enumerate(text.split("\n")[:20]):
        c.drawString(30, 800 - 14 * i, ln[:45])
    c.save()
    return buf.getvalue()


_SAMPLE = (REPLIES / "yingkou.txt").read_text(encoding="utf-8")[:1200]
CONTAINERS = [_docx(_SAMPLE), _pdf(_SAMPLE)]
HTML = [f"<html><body><h1>答复</h1><p>{_SAMPLE[:300]}</p><script>x()</script></body></html>".encode(enc) for enc in ("utf-8", "gb18030")]
@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(suffix=st.sampled_from([".txt", ".md", ".html", ".htm", ".docx", ".pdf"]), data=st.data())
def test_fuzz_read_file_returns_a_document_or_load_error(fuzz_dir, suffix, data):
    record("fuzz read_file")
    seeds = CONTAINERS if suffix in (".docx", ".pdf") else (HTML if suffix.startswith(".htm") else SEEDS)
    blob = data.draw(st.one_of(mutated(seeds), mutated(CONTAINERS), st.binary(max_size=500)))
    path = fuzz_dir / f"f{COUNTS['fuzz read_file']}{suffix}"
    path.write_bytes(blob)
    try:
        rf = read_file(path)
    except LoadError as e:
        assert e.reason and str(path) in str(e)
        return
    finally:
        path.unlink(missing_ok=True)
    assert rf.text.strip()
    chunk_document(parse(rf))


# ------------------------------------------------------------------ atheris (libFuzzer), when installed
def _atheris_main() -> None:  # pragma: no cover - runs in a subprocess
    import atheris

    # re-import the rag modules under instrumentation (this file imported them already, uninstrumented)
    for name in [m for m in sys.modules if m == "rag" or m.startswith("rag.")]:
        del sys.modules[name]
    with atheris.instrument_imports(include=["rag"]):
        from rag.chunker import chunk_document as chunk
        from rag.loader import LoadError as LErr
        from rag.loader import decode_bytes as decode
        from rag.loader import read_file as read
        from rag.parser import parse as parse_

    tmp = Path(os.environ.get("RAG_ATHERIS_TMP") or tempfile.mkdtemp(prefix="rag-atheris-"))
    suffixes = [".txt", ".html", ".docx", ".pdf"]
    cfg = ChunkerConfig(max_chars=120, min_chars=30)

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        mode = fdp.ConsumeIntInRange(0, 3)
        if mode == 0:  # text straight into the parser
            text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
        elif mode == 1:  # bytes to the decoder
            try:
                text, _ = decode(fdp.ConsumeBytes(fdp.remaining_bytes()), "fuzz.txt")
            except LErr:
                return
        else:  # a file of some format
            p = tmp / f"x{suffixes[fdp.ConsumeIntInRange(0, 3)]}"
            p.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
            try:
                text = read(p).text
            except LErr:
                return
        doc = parse_(raw(text))
        chunk(doc, cfg)

    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.timeout(900)
@pytest.mark.skipif(not _atheris_available(), reason="atheris is not installed (pip install atheris)")
def test_atheris_fuzzing_of_loader_and_parser(tmp_path):
    runs = int(os.environ.get("RAG_ATHERIS_RUNS", str(max(2000, EXAMPLES * 5))))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, s in enumerate(SEEDS + CONTAINERS + HTML):
        (corpus / f"seed{i}").write_bytes(bytes([i % 4]) + s[:4000])
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, __file__, f"-runs={runs}", "-max_len=8192", "-seed=7", "-timeout=30", "-rss_limit_mb=3000", str(corpus)],
        capture_output=True, text=True, timeout=880, cwd=REPO, env={**os.environ, "RAG_ATHERIS_TMP": str(tmp_path)},
    )
    elapsed = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr[-4000:]
    m = re.search(r"Done (\d+) runs in (\d+) second", p.stderr)
    assert m, p.stderr[-2000:]
    COUNTS["atheris (libFuzzer) loader+parser"] += int(m.group(1))
    cov = re.findall(r"cov: (\d+)", p.stderr)
    print(f"atheris: {m.group(1)} inputs in {elapsed:.0f} s, coverage {cov[-1] if cov else '?'} edges")


def test_zz_report_fuzz_counts():
    """Print and save how many inputs each fuzz/property target tried in this session."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / "fuzz_counts.json"
    data = {"examples_setting": EXAMPLES, "counts": dict(sorted(COUNTS.items())), "total": sum(COUNTS.values())}
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    print("fuzz/property inputs tried:", json.dumps(data, ensure_ascii=False))


if __name__ == "__main__":  # the atheris harness: python tests/test_fuzz.py -runs=N [corpus]
    _atheris_main()
