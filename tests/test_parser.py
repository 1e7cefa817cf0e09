"""Stage 2 (rag.parser): outline and metadata of the five bundled replies and the more-replies headers."""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.loader import read_file
from rag.parser import cn_to_int, iter_sections, parse, split_sentences

REPO = Path(__file__).resolve().parent.parent
REPLIES = REPO / "data" / "replies"
MORE = REPO / "data" / "more-replies"


@pytest.fixture(scope="module")
def docs():
    return {p.stem: parse(read_file(p)) for p in sorted(REPLIES.glob("*.txt"))}


def body(doc):
    """Top-level sections without the preamble and the closing."""
    return [s for s in doc.sections if s.label not in ("前言", "结语")]


def child_labels(sec):
    return [c.label for c in sec.children if c.label]


def find(sections, prefix):
    hits = [s for s in sections if s.label.startswith(prefix)]
    assert len(hits) == 1, (prefix, [s.label for s in sections])
    return hits[0]


# ------------------------------------------------------------------ metadata
META = {
    "zhengzhou": dict(city="郑州市", issuer="郑州市工业和信息化局", addressee="孙建伟代表", number="B(2024)059", year="2024"),
    "liaoning": dict(city="辽宁省", issuer="辽宁省工业和信息化厅", addressee="张建国代表", number="1421119", year="2024"),
    "tianjin": dict(city="天津市", issuer="天津市工业和信息化局", addressee="市工商联", number="0104", year="2021"),
    "shenyang": dict(city="沈阳市", issuer="", addressee="政协经济委员会", number="", year=""),
    "yingkou": dict(city="营口市", addressee="王庭坚委员"),
}


@pytest.mark.parametrize("doc_id", sorted(META))
def test_metadata(docs, doc_id):
    m = docs[doc_id].meta
    want = META[doc_id]
    got = {k: getattr(m, k) for k in want}
    assert got == want
    assert m.doc_id == doc_id
    assert m.path.endswith(f"{doc_id}.txt")
    assert len(m.content_hash) == 64


def test_titles(docs):
    assert docs["zhengzhou"].meta.title == "关于促进中小企业健康发展的建议"
    assert docs["liaoning"].meta.title == "关于壮大我省规上工业企业规模的建议"
    assert docs["shenyang"].meta.title == "关于进一步推进民营企业科技创新的提案"
    assert docs["yingkou"].meta.title == "关于促进我市中小企业创新发展的建议提案"
    assert docs["tianjin"].meta.title.startswith("关于大力支持小微企业发展")


def test_dates(docs):
    assert docs["tianjin"].meta.date == "2021-03-22"
    assert docs["liaoning"].meta.date.startswith("2024-")
    assert docs["zhengzhou"].meta.date.startswith("2024-")


def test_missing_fields_stay_empty(docs):
    m = docs["shenyang"].meta
    assert (m.issuer, m.date, m.number, m.year, m.source) == ("", "", "", "", "")
    y = docs["yingkou"].meta
    assert (y.issuer, y.date, y.number) == ("", "", "")


# ------------------------------------------------------------------ outline
def test_shenyang_four_sections_and_first_section_items(docs):
    secs = body(docs["shenyang"])
    assert [s.label[:2] for s in secs] == ["一、", "二、", "三、", "四、"]
    assert secs[0].label == "一、在拓展融资渠道,强化民营企业创新资金保障方面"
    assert child_labels(secs[0]) == [
        "一是建立健全金融服务工作机制",
        "二是落实各项金融政策",
        "三是加大对重点领域金融支持",
        "四是加大创投基金供给",
        "五是研究开发知识产权证券化交易产品",
    ]
    # the items were one paragraph in the file; each got its own text
    first, second = secs[0].children[:2]
    assert first.text.startswith("一是建立健全金融服务工作机制。") and "二是落实各项金融政策" not in first.text
    assert second.text.startswith("二是落实各项金融政策。") and "落实首贷户贴息政策" in second.text
    assert [len(s.children) for s in secs] == [5, 3, 3, 3]


def test_shenyang_preamble_and_closing(docs):
    secs = docs["shenyang"].sections
    assert secs[0].label == "前言" and secs[0].text.startswith("政协经济委员会:")
    assert secs[-1].label == "结语" and secs[-1].text == "感谢贵委对科技工作的重视和关心。"


def test_tianjin_third_item_has_nested_items(docs):
    secs = body(docs["tianjin"])
    assert [s.label for s in secs] == ["一、工作开展情况", "二、下一步工作举措"]
    work = secs[0]
    assert [lab[:2] for lab in child_labels(work)] == ["一是", "二是", "三是"]
    third = find(work.children, "三是")
    assert third.label == "三是着力推动创新驱动,助力企业提质增效"
    assert [lab[:2] for lab in child_labels(third)] == ["一是", "二是", "三是", "四是", "五是"]
    assert child_labels(third)[0] == "一是壮实“底盘”推动发展"
    assert child_labels(third)[-1] == "五是引导企业开展云化改造"
    # the first two items also restart their enumeration underneath
    assert len(find(work.children, "一是").children) == 3
    assert len(find(work.children, "二是").children) == 3
    assert [lab[:2] for lab in child_labels(secs[1])] == ["一是", "二是", "三是", "四是", "五是", "六是"]


def test_yingkou_numbered_items_with_their_enumerations(docs):
    secs = body(docs["yingkou"])
    assert [s.label for s in secs] == ["一、促进我市中小企业创新发展工作推进情况", "二、下一步重点工作安排"]
    items = secs[0].children
    assert [s.label.split(".")[0] for s in items] == ["1", "2", "3", "4", "5", "6", "7"]
    assert items[0].label == "1.持续完善促进民营经济发展机制体制"
    assert [lab[:2] for lab in child_labels(items[0])] == ["一是", "二是", "三是", "四是"]
    assert [len(child_labels(s)) for s in items] == [4, 4, 5, 2, 3, 6, 3]
    talent = items[4]
    assert talent.label == "5.引导企业全面提升竞争力"
    allowance = talent.children[2]
    assert allowance.label.startswith("三是实施《营口市引进重点高校本科以上毕业生生活补贴发放管理实施细则")
    assert "每月分别享受2000元、1000元、800元的生活补贴" in allowance.text
    assert [s.label.split(".")[0] for s in secs[1].children] == ["1", "2", "3", "4", "5"]


def test_liaoning_and_zhengzhou_outline(docs):
    lia = body(docs["liaoning"])
    assert [s.label for s in lia] == ["一、持续优化营商环境", "二、推动科技创新发展", "三、深入推进结构调整", "四、切实加强要素保障", "五、加大政策支持力度"]
    assert [len(s.children) for s in lia] == [5, 4, 4, 3, 3]
    zz = body(docs["zhengzhou"])
    assert [s.label[:2] for s in zz] == ["一、", "二、", "三、", "四、", "五、"]


def test_every_section_path_is_nonempty_and_levels_increase(docs):
    for doc in docs.values():
        for path, sec in iter_sections(doc.sections):
            assert path, doc.meta.doc_id
            for child in sec.children:
                assert child.level > sec.level


# ------------------------------------------------------------------ boilerplate
def _all_section_text(doc) -> str:
    parts = []
    for _, s in iter_sections(doc.sections):
        parts += [s.label, getattr(s, "heading", ""), s.text]
    return "\n".join(parts)


def test_tianjin_web_chrome_is_boilerplate(docs):
    doc = docs["tianjin"]
    boiler = "\n".join(doc.boilerplate)
    assert "首页 > 政务公开 > 建议提案办理" in doc.boilerplate
    assert any(b.startswith("来源:天津市工业和信息化局") and "发布时间" in b for b in doc.boilerplate)
    assert "工作人员" in boiler and "联系电话:13602004867" in boiler
    assert any(b.startswith("附件") for b in doc.boilerplate)
    text = _all_section_text(doc) + doc.text
    for gone in ("首页 >", "政务公开 >", "发布时间", "联系电话", "13602004867", "工作人员"):
        assert gone not in text, gone


def test_zhengzhou_and_liaoning_web_chrome_is_boilerplate(docs):
    zz = docs["zhengzhou"]
    assert any(b.startswith("主办单位") for b in zz.boilerplate)
    assert "主办单位" not in _all_section_text(zz) + zz.text
    assert "450007" not in zz.text
    lia = docs["liaoning"]
    assert "附件下载:" in lia.boilerplate
    assert any("发布时间" in b for b in lia.boilerplate)
    assert "附件下载" not in lia.text and "发布时间" not in lia.text


def test_real_content_mentioning_scan_code_stays(docs):
    doc = docs["yingkou"]
    assert "通过“扫一扫”可获得最新惠企政策" in doc.text
    assert "通过“扫一扫”可获得最新惠企政策" in _all_section_text(doc)
    assert not any("扫一扫" in b for b in doc.boilerplate)


def test_synthetic_portal_page(tmp_path):
    page = "\n".join(
        [
            "首页 > 政务公开 > 建议提案",
            "来源:营口市工业和信息化局",
            "发布时间:2023-05-06 10:00",
            "字号:大 中 小",
            "关于促进中小企业发展建议的答复",
            "王庭坚委员:",
            "您提出的《关于促进中小企业发展的建议》收悉,现答复如下:",
            "一、加大融资支持",
            "一是设立首贷中心。二是推广扫一扫申报,企业通过“扫一扫”即可提交材料。",
            "营口市工业和信息化局",
            "2023年5月6日",
            "附件下载:",
            "扫一扫在手机打开当前页",
            "主办单位:营口市人民政府办公室",
            "工作人员:张三",
            "联系电话:0417-1234567",
        ]
    )
    f = tmp_path / "portal.txt"
    f.write_text(page, encoding="utf-8")
    doc = parse(read_file(f))
    for line in ("首页 > 政务公开 > 建议提案", "来源:营口市工业和信息化局", "发布时间:2023-05-06 10:00", "附件下载:", "扫一扫在手机打开当前页",
                 "主办单位:营口市人民政府办公室", "工作人员:张三", "联系电话:0417-1234567"):
        assert line in doc.boilerplate, line
        assert line not in doc.text
    assert "企业通过“扫一扫”即可提交材料。" in doc.text
    assert doc.meta.issuer == "营口市工业和信息化局"
    assert doc.meta.city == "营口市"
    assert doc.meta.date == "2023-05-06"
    assert doc.meta.addressee == "王庭坚委员"


# ------------------------------------------------------------------ more-replies (source:/city: headers)
@pytest.mark.parametrize(
    "doc_id,city,issuer",
    [
        ("001_wuhan", "武汉市", None),
        ("005_jiaxing", "嘉兴市", None),
        ("006_linxiang", "临湘市", None),
        ("007_hunan", "湖南省", "湖南省工业和信息化厅"),
        ("008_shanghai", "上海市", "上海市经济信息化委"),
        ("009_shanghai", "上海市", "上海市发展和改革委员会"),
        ("013_guangzhou", "广州市", None),
        ("018_guangdong", "广东省", "广东省工业和信息化厅"),
    ],
)
def test_more_replies_headers(doc_id, city, issuer):
    path = MORE / f"{doc_id}.txt"
    doc = parse(read_file(path))
    assert doc.meta.city == city
    if issuer is not None:
        assert doc.meta.issuer == issuer
    header = path.read_text(encoding="utf-8").split("\n")[0]
    assert header.startswith("source:")
    assert doc.meta.source == header.split(":", 1)[1].strip()
    assert not doc.text.startswith(("source:", "city:"))
    assert "city:" not in doc.text and doc.meta.source not in doc.text


def test_all_more_replies_have_a_city_and_sections():
    for path in sorted(MORE.glob("*.txt")):
        doc = parse(read_file(path))
        assert doc.meta.city, path.name
        assert doc.sections, path.name


def test_city_is_never_guessed_from_the_file_name(tmp_path):
    text = (
        "张三代表:\n"
        "您提出的《关于支持中小企业发展的建议》收悉,现答复如下:\n"
        "一、加大融资支持\n"
        "一是设立中小企业发展基金。二是推广普惠金融产品,降低企业融资成本。\n"
        "二、优化营商环境\n"
        "一是深化放管服改革。二是建立政企沟通机制。\n"
    )
    for name in ("shenyang.txt", "guangzhou.txt", "营口市.txt"):
        f = tmp_path / name
        f.write_text(text, encoding="utf-8")
        doc = parse(read_file(f))
        assert doc.meta.city == "", name
        assert doc.meta.issuer == ""
        assert doc.meta.addressee == "张三代表"
        assert doc.meta.title == "关于支持中小企业发展的建议"


def test_city_header_wins_over_text(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("source: https://example.org/a.html\ncity: 沈阳\n\n张三代表:\n一、加大融资支持\n一是设立基金。二是推广普惠金融。\n", encoding="utf-8")
    doc = parse(read_file(f))
    assert doc.meta.city == "沈阳市"
    assert doc.meta.source == "https://example.org/a.html"


# ------------------------------------------------------------------ helpers
def test_split_sentences_keeps_everything():
    text = "一是设立基金。二是推广“普惠金融”。三是!四是?五是;没有结尾"
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert parts[:2] == ["一是设立基金。", "二是推广“普惠金融”。"]
    assert parts[-1] == "没有结尾"


def test_a_colon_and_a_space_end_a_sentence():
    """A reply whose line breaks were lost: salutation, acknowledgement and text are three sentences; a colon
    inside a line (主要做法如下:一是…, 时间:2021年) ends none."""
    text = "武瑜芳委员: 您的提案收悉,现答复如下: 近年来,深入实施“三区”发展战略。"
    parts = split_sentences(text)
    assert "".join(parts) == text and [p.strip() for p in parts] == ["武瑜芳委员:", "您的提案收悉,现答复如下:", "近年来,深入实施“三区”发展战略。"]
    assert split_sentences("主要做法如下:一是加强。") == ["主要做法如下:一是加强。"]
    assert split_sentences("时间:2021年3月") == ["时间:2021年3月"]


@pytest.mark.parametrize("s,n", [("一", 1), ("十", 10), ("十二", 12), ("二十三", 23), ("7", 7)])
def test_cn_to_int(s, n):
    assert cn_to_int(s) == n


@pytest.mark.parametrize(
    "stem, date",
    [
        ("010_shanghai", "2023-05-25"),  # "(发布日期:2023年05月25日 文号:…)" in the first line of the text
        ("002_wuhan", "2025-11-13"),  # only the page address has it: …/202511/t20251113_2677272.html
        ("101_shandong", "2020-09-09"),  # …/art/2020/9/9/art_123000_7390.html
        ("121_xinyang", "2024-10-04"),  # 时间:2024-10-04 in the header, not the address's 2025/01-03
        ("tianjin", "2021-03-22"),  # the signature date at the end
    ],
)
def test_reply_date_from_header_line_or_page_address(stem, date):
    folder = REPLIES if stem.isalpha() else MORE
    doc = parse(read_file(folder / f"{stem}.txt"))
    assert doc.meta.date == date and doc.meta.year == date[:4]
