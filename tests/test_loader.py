"""Stage 1 (rag.loader): formats, encodings, directories and bad input.

Every file is written by the test itself (docx with python-docx, pdf with reportlab), no mocks.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag.loader import LoadError, decode_bytes, discover, iter_files, read_file

REPO = Path(__file__).resolve().parent.parent
REPLIES = REPO / "data" / "replies"
YINGKOU = (REPLIES / "yingkou.txt").read_text(encoding="utf-8")

# a traditional-Chinese passage (what a Big5 file from Taiwan/Hong Kong looks like)
TRADITIONAL = (
    "王委員:\n"
    "您提出的《關於促進我市中小企業創新發展的建議》已收悉,現答覆如下:\n"
    "一、持續完善促進民營經濟發展機制體制\n"
    "一是制定出台民營經濟發展規劃,結合我市民營經濟發展現狀和特點,提出發展的目標、具體任務和保障措施。"
    "二是加快推進企業上市工作,對首次獲得貸款的小微企業給予貼息補助。"
    "三是對到我市企業就業的博士研究生,每月發放生活補貼2000元。\n"
)

# the 8-byte PNG signature and a 1x1 image: what a picture renamed to .txt looks like
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)


def _write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


# ------------------------------------------------------------------ encodings
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
@pytest.mark.parametrize("reply", ["yingkou", "shenyang", "tianjin", "liaoning", "zhengzhou"])
def test_simplified_reply_decodes_identically_in_every_encoding(tmp_path, reply, encoding):
    text = (REPLIES / f"{reply}.txt").read_text(encoding="utf-8")
    if encoding == "gbk":  # GBK has no no-break/em space and no bullet: a GBK page would have written these
        text = text.replace("\xa0", " ").replace("\u2003", "　").replace("•", "·")
    f = _write(tmp_path / f"{reply}.txt", text.encode(encoding))
    raw = read_file(f)
    assert raw.text == text.replace("\r\n", "\n")
    assert raw.fmt == "txt"
    assert raw.doc_id == reply
    if encoding in ("gbk", "gb18030"):
        assert raw.encoding == "gb18030"  # GB18030 is the superset used for GBK files
    elif encoding == "utf-8-sig":
        assert raw.encoding == "utf-8-sig"
        assert not raw.text.startswith("\ufeff")
    elif encoding == "utf-16":
        assert raw.encoding == "utf-16"  # Python writes the BOM
        assert not raw.text.startswith("\ufeff")


def test_gbk_copy_of_a_reply_is_not_mojibake(tmp_path):
    f = _write(tmp_path / "yingkou_gbk.txt", YINGKOU.encode("gbk"))
    raw = read_file(f)
    assert raw.text == YINGKOU
    assert "营口市" in raw.text and "王庭坚委员" in raw.text


@pytest.mark.parametrize("encoding", ["big5", "utf-8", "utf-8-sig", "utf-16"])
def test_traditional_chinese_decodes_identically(tmp_path, encoding):
    f = _write(tmp_path / "trad.txt", TRADITIONAL.encode(encoding))
    raw = read_file(f)
    assert raw.text == TRADITIONAL
    if encoding == "big5":
        assert raw.encoding == "big5"


def test_short_big5_and_gbk_strings_are_told_apart():
    trad = "營口市對博士每月補貼2000元。"
    simp = "营口市对博士每月补贴2000元。"
    assert decode_bytes(trad.encode("big5")) == (trad, "big5")
    assert decode_bytes(simp.encode("gbk")) == (simp, "gb18030")


def test_same_text_in_all_encodings_gives_same_parse(tmp_path):
    from rag.parser import parse

    metas = []
    for enc in ("utf-8", "utf-8-sig", "gbk", "utf-16"):
        f = _write(tmp_path / enc / "yingkou.txt", YINGKOU.encode(enc))
        doc = parse(read_file(f))
        metas.append((doc.meta.city, doc.meta.addressee, doc.meta.title, doc.text))
    assert all(m == metas[0] for m in metas)
    assert metas[0][0] == "营口市"


def test_random_high_bytes_are_refused_not_mojibake(tmp_path):
    # no NUL bytes, not UTF-8; GB18030 would "decode" it to nonsense
    data = bytes(b for b in range(0x81, 0xFF) if b not in (0xA0,)) * 40
    f = _write(tmp_path / "noise.txt", data)
    with pytest.raises(LoadError) as ei:
        read_file(f)
    assert "mojibake" in ei.value.reason or "not decodable" in ei.value.reason


# ------------------------------------------------------------------ formats
def test_markdown(tmp_path):
    md = "# 关于促进中小企业发展的答复\n\n王庭坚委员:\n\n一、加大融资支持\n\n一是设立首贷中心。二是发展普惠金融。\n"
    raw = read_file(_write(tmp_path / "reply.md", md))
    assert raw.fmt == "md"
    assert "一是设立首贷中心。" in raw.text


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_keeps_text_and_drops_scripts_and_navigation(tmp_path, suffix):
    html = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>答复</title>
    <style>p { color: red }</style><script>var tracker = "不应出现";</script></head>
    <body><nav>首页 导航栏不应出现</nav>
    <h1>关于促进中小企业发展的答复</h1>
    <p>王庭坚委员:</p><div>一、加大融资支持</div>
    <p>一是设立首贷中心。<br>二是发展普惠金融。</p>
    <footer>版权所有 页脚不应出现</footer></body></html>"""
    raw = read_file(_write(tmp_path / f"reply{suffix}", html))
    assert raw.fmt == "html"
    lines = [ln.strip() for ln in raw.text.split("\n") if ln.strip()]
    assert "关于促进中小企业发展的答复" in lines
    assert "一、加大融资支持" in lines  # block elements become their own lines
    assert "一是设立首贷中心。" in lines and "二是发展普惠金融。" in lines
    for gone in ("tracker", "color", "导航栏不应出现", "页脚不应出现"):
        assert gone not in raw.text


def test_html_in_gbk(tmp_path):
    html = '<html><head><meta charset="gbk"></head><body><p>营口市对博士研究生每月发放生活补贴2000元。</p></body></html>'
    raw = read_file(_write(tmp_path / "gbk.htm", html.encode("gbk")))
    assert "营口市对博士研究生每月发放生活补贴2000元。" in raw.text


def test_docx_paragraphs_and_tables(tmp_path):
    import docx

    d = docx.Document()
    for line in ["王庭坚委员:", "一、加大融资支持", "一是设立首贷中心。二是发展普惠金融。"]:
        d.add_paragraph(line)
    table = d.add_table(rows=2, cols=2)
    table.rows[0].cells[0].text = "学历"
    table.rows[0].cells[1].text = "每月补贴"
    table.rows[1].cells[0].text = "博士研究生"
    table.rows[1].cells[1].text = "2000元"
    f = tmp_path / "reply.docx"
    d.save(f)
    raw = read_file(f)
    assert raw.fmt == "docx"
    lines = raw.text.split("\n")
    assert lines[:3] == ["王庭坚委员:", "一、加大融资支持", "一是设立首贷中心。二是发展普惠金融。"]
    assert "博士研究生 | 2000元" in lines


def test_docx_of_a_reply_parses_like_the_txt(tmp_path):
    import docx

    from rag.parser import parse

    d = docx.Document()
    for line in YINGKOU.split("\n"):
        if line.strip():
            d.add_paragraph(line)
    f = tmp_path / "yingkou.docx"
    d.save(f)
    from_docx = parse(read_file(f))
    from_txt = parse(read_file(REPLIES / "yingkou.txt"))
    assert from_docx.meta.city == from_txt.meta.city == "营口市"
    assert from_docx.meta.addressee == from_txt.meta.addressee
    assert from_docx.meta.title == from_txt.meta.title
    assert [s.label for s in from_docx.sections] == [s.label for s in from_txt.sections]


def _chinese_pdf(path: Path, lines: list[str]) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path))
    c.setFont("STSong-Light", 12)
    y = 800
    for line in lines:
        c.drawString(40, y, line)
        y -= 18
    c.showPage()
    c.save()
    return path


def test_pdf_with_chinese_text(tmp_path):
    lines = ["王庭坚委员:", "一、促进我市中小企业创新发展工作推进情况", "1.持续完善促进民营经济发展机制体制。", "对博士研究生每月发放生活补贴2000元。"]
    raw = read_file(_chinese_pdf(tmp_path / "reply.pdf", lines))
    assert raw.fmt == "pdf"
    got = [ln.strip() for ln in raw.text.split("\n") if ln.strip()]
    assert got == lines


def test_pdf_rejoins_lines_broken_at_the_page_width(tmp_path):
    lines = ["一、加大融资支持", "一是制定出台民营经济发展规划,结合我市民营经济", "发展现状和特点,提出发展目标。"]
    raw = read_file(_chinese_pdf(tmp_path / "wrapped.pdf", lines))
    assert "一是制定出台民营经济发展规划,结合我市民营经济发展现状和特点,提出发展目标。" in raw.text
    assert "一、加大融资支持\n" in raw.text  # a heading stays on its own line


# ------------------------------------------------------------------ directories
def test_directory_is_read_recursively_with_all_formats(tmp_path):
    import docx

    root = tmp_path / "in"
    _write(root / "a.txt", "营口市对博士每月补贴2000元。")
    _write(root / "sub" / "b.md", "# 标题\n沈阳市落实首贷户贴息政策。")
    _write(root / "sub" / "deeper" / "c.html", "<p>天津市优化营商环境。</p>")
    _write(root / "sub" / "deeper" / "d.htm", "<p>郑州市提高金融服务质量。</p>")
    d = docx.Document()
    d.add_paragraph("辽宁省壮大规上工业企业。")
    (root / "sub" / "e").mkdir(parents=True)
    d.save(root / "sub" / "e" / "e.docx")
    _chinese_pdf(root / "f.pdf", ["武汉市优化民营企业发展环境。"])
    _write(root / "ignored.xlsx", b"PK\x03\x04not a spreadsheet")  # unsupported files in a folder are skipped silently
    _write(root / ".hidden.txt", "隐藏文件")

    found = discover([root])
    assert not found.problems
    assert sorted(p.name for p in found.files) == ["a.txt", "b.md", "c.html", "d.htm", "e.docx", "f.pdf"]
    raws = list(iter_files([root]))
    assert all(not isinstance(r, LoadError) for r in raws), raws
    by_id = {r.doc_id: r for r in raws}
    assert "2000元" in by_id["a"].text
    assert "首贷户贴息" in by_id["b"].text
    assert "优化营商环境" in by_id["c"].text
    assert "金融服务质量" in by_id["d"].text
    assert "规上工业企业" in by_id["e"].text
    assert "民营企业发展环境" in by_id["f"].text
    assert {r.fmt for r in raws} == {"txt", "md", "html", "docx", "pdf"}


def test_single_files_and_directories_together_without_duplicates(tmp_path):
    a = _write(tmp_path / "d" / "a.txt", "营口市对博士每月补贴2000元。")
    found = discover([a, tmp_path / "d", a])
    assert [p.name for p in found.files] == ["a.txt"]


def test_directory_symlink_loop_terminates(tmp_path):
    root = tmp_path / "loop"
    _write(root / "a.txt", "营口市对博士每月补贴2000元。")
    os.symlink(root, root / "again")
    found = discover([root])
    assert [p.name for p in found.files] == ["a.txt"]


# ------------------------------------------------------------------ bad input
def _reason(path) -> str:
    with pytest.raises(LoadError) as ei:
        read_file(path)
    assert str(path) in str(ei.value)  # the message names the file
    return ei.value.reason


def test_empty_file(tmp_path):
    assert "empty" in _reason(_write(tmp_path / "empty.txt", b""))


@pytest.mark.parametrize("data", [b" \n\t\r\n \n", " \n\u3000\xa0\n".encode("utf-8"), " \n\u3000\n".encode("utf-16")])
def test_whitespace_only_file(tmp_path, data):
    assert "empty" in _reason(_write(tmp_path / "blank.txt", data))


def test_png_renamed_to_txt_is_binary(tmp_path):
    assert "binary" in _reason(_write(tmp_path / "picture.txt", PNG))


@pytest.mark.parametrize("name", ["sheet.xlsx", "program.exe", "noextension"])
def test_unsupported_extension(tmp_path, name):
    f = _write(tmp_path / name, "营口市对博士每月补贴2000元。")
    reason = _reason(f)
    assert "unsupported" in reason
    found = discover([f])
    assert not found.files and "unsupported" in found.problems[0].reason


def test_missing_path(tmp_path):
    f = tmp_path / "does-not-exist.txt"
    assert "cannot read" in _reason(f)
    found = discover([f])
    assert not found.files and "no such file" in found.problems[0].reason


def test_unreadable_path(tmp_path):
    d = tmp_path / "a-directory.txt"  # a name that looks like a text file but cannot be read as one
    d.mkdir()
    assert "cannot read" in _reason(d)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_file_without_read_permission(tmp_path):
    f = _write(tmp_path / "secret.txt", "营口市对博士每月补贴2000元。")
    f.chmod(0)
    try:
        assert "cannot read" in _reason(f)
    finally:
        f.chmod(0o644)


@pytest.mark.parametrize(
    "name,data",
    [
        ("only-scripts.html", "<html><head><script>var a = 1;</script><style>p{}</style></head><body></body></html>"),
        ("punctuation.txt", "。。。,,,——!!!\n……"),
    ],
)
def test_file_decoding_to_nothing(tmp_path, name, data):
    assert "no text" in _reason(_write(tmp_path / name, data))


def test_corrupt_docx_and_pdf(tmp_path):
    assert "not a readable .docx" in _reason(_write(tmp_path / "broken.docx", b"this is not a zip file"))
    assert "not a readable PDF" in _reason(_write(tmp_path / "broken.pdf", b"%PDF-1.4\n garbage without objects"))


def test_iter_files_reports_bad_files_and_keeps_good_ones(tmp_path):
    root = tmp_path / "mixed"
    _write(root / "good.txt", "营口市对博士每月补贴2000元。")
    _write(root / "empty.txt", b"")
    _write(root / "picture.txt", PNG)
    out = list(iter_files([root, tmp_path / "missing.md"]))
    good = [r for r in out if not isinstance(r, LoadError)]
    bad = {Path(e.path).name: e.reason for e in out if isinstance(e, LoadError)}
    assert [r.doc_id for r in good] == ["good"]
    assert set(bad) == {"empty.txt", "picture.txt", "missing.md"}
    assert "empty" in bad["empty.txt"] and "binary" in bad["picture.txt"]


def test_content_hash_depends_on_bytes_only(tmp_path):
    a = read_file(_write(tmp_path / "a" / "x.txt", "营口市。"))
    b = read_file(_write(tmp_path / "b" / "x.txt", "营口市。"))
    c = read_file(_write(tmp_path / "c" / "x.txt", "营口市!"))
    assert a.content_hash == b.content_hash != c.content_hash
