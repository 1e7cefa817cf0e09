"""Lists announced by a sentence, several places in one question, and what a reply says about itself: the named
parts (rag.answer.introduces_list / following_items, rag.plan.named_places, the meta intents) on made-up text, and
end to end on a made-up reply ingested into its own index (no bundled reply in it)."""
from __future__ import annotations

import pytest

from rag.answer import introduces_list, listed_items, marker_style
from rag.parser import is_boilerplate
from rag.plan import analyze, meta_intents, named_places
from rag.textproc import asks_for_section, asks_number
from rag.types import Chunk

from conftest import pipeline_over


class _Lex:
    def cities(self):
        return ["广州市", "信阳市", "天津市", "沈阳市", "辽宁省", "威海市环翠区", "明光市"]


@pytest.mark.parametrize(
    "sentence, announces",
    [
        ("近年来,全省中小企业创新能力不断增强。主要开展了以下工作:", True),
        ("提案中提出从以下四个方面支持本土企业:", True),
        ("重点做了三个方面工作:", True),
        ("具体情况如下:", True),
        ("现答复如下:", False),  # the whole reply, no list
        ("现将办理情况报告如下:", False),
        ("主要开展了以下工作。", False),  # no colon: it announces nothing here
        ("2023年新增企业1.2万户。", False),
    ],
)
def test_introduces_list(sentence, announces):
    assert introduces_list(sentence) is announces


def _chunk(i: int, path: list[str], text: str) -> Chunk:
    return Chunk(chunk_id=f"d#{i}", doc_id="d", ordinal=i, text=text, section_path=path)


def _leads(sentence: str) -> bool:
    return introduces_list(sentence) or "体系" in sentence


@pytest.mark.parametrize(
    "sentence, style",
    [("一是抓政策。", "shi"), ("二、主要工作", "dun"), ("(三)强化领导。", "paren"), ("2、建立融资平台", "num"),
     ("①设立基金", "circle"), ("近年来,全省…", "")],
)
def test_marker_style(sentence, style):
    assert marker_style(sentence) == style


def test_listed_items_after_the_passage_in_the_passages_that_follow():
    doc = [
        _chunk(0, ["前言"], "近年来成效明显。主要开展了以下工作:"),
        _chunk(1, ["一是抓政策"], "一是抓政策。出台办法。"),
        _chunk(2, ["二是抓培育"], "二是抓培育。建立培育库。"),
        _chunk(3, ["二是抓培育"], "培育库入库企业300家。"),  # the same item, its passage cut: it goes on
        _chunk(4, ["三是抓服务"], "三是抓服务。"),
        _chunk(5, ["结语"], "下一步,我们将继续努力。"),
    ]
    lead, items = listed_items(doc, doc[0], _leads)
    assert lead == "主要开展了以下工作:"
    assert [sents[0] for _, sents in items] == ["一是抓政策。", "二是抓培育。", "三是抓服务。"]
    assert items[1][1] == ["二是抓培育。", "建立培育库。", "培育库入库企业300家。"] and items[2][0] is doc[4]
    assert listed_items(doc, doc[5], _leads) is None  # nothing after it
    assert listed_items(doc, doc[1], lambda s: False) is None  # no sentence leads


def test_listed_items_inside_one_paragraph_end_at_another_kind_of_marker():
    doc = [
        _chunk(0, ["一、基本情况"], "构建了“四维一体”的评价体系。一是突出政策导向。二是鼓励业务拓展。\n二、下一步工作"),
        _chunk(1, ["二、下一步工作"], "(一)强化领导。"),
    ]
    lead, items = listed_items(doc, doc[0], _leads)
    assert lead.startswith("构建了") and [s[0] for _, s in items] == ["一是突出政策导向。", "二是鼓励业务拓展。"]
    # one item is no list
    one = [_chunk(0, ["x"], "构建了评价体系。一是突出政策导向。\n下一步,继续努力。")]
    assert listed_items(one, one[0], _leads) is None


def test_a_lead_before_the_first_item_is_no_part_of_it():
    """The chunker names a passage by the first item it holds (一、… › 一是突出政策导向), but its lead sentence
    comes before that item: it leads the list, it is not inside an item."""
    doc = [
        _chunk(0, ["一、考核机制", "一是突出政策导向"], "构建了“四维一体”的评价体系。\n一是突出政策导向。提高分值。"),
        _chunk(1, ["一、考核机制", "二是鼓励业务拓展"], "二是鼓励业务拓展。考核规模。"),
        _chunk(2, ["一、考核机制", "三是弱化盈利考核"], "三是弱化盈利考核。坚持保本微利原则。"),
    ]
    lead, items = listed_items(doc, doc[0], _leads)
    assert lead.startswith("构建了") and [s[0] for _, s in items] == ["一是突出政策导向。", "二是鼓励业务拓展。", "三是弱化盈利考核。"]
    # a lead after its item's heading is inside that item (一是…。编制…体系。二是…): no list of its own
    inside = [_chunk(0, ["一、考核机制", "一是突出政策导向"], "一是突出政策导向。编制评价体系。\n二是鼓励业务拓展。考核规模。")]
    assert listed_items(inside, inside[0], _leads) is None


@pytest.mark.parametrize(
    "question, places",
    [
        ("广州和信阳在组建创新联合体方面各做了什么?", ["广州市", "信阳市"]),
        ("岳阳、常德、沈阳三地的答复中", ["岳阳市", "常德市", "沈阳市"]),
        ("辽宁省沈阳市对博士补贴多少?", ["沈阳市"]),  # the province only says where 沈阳 is
        ("威海环翠区和安徽明光市分别有什么成效?", ["威海市", "明光市"]),
        ("沈阳市和辽宁省分别怎么做的?", ["沈阳市", "辽宁省"]),  # side by side, both are asked about
        ("天津市科委和天津市财政局的两份答复", ["天津市"]),
        ("岳阳湖南工程机械配套产业园的规划总面积是多少?", ["岳阳市"]),  # the province next to its city: one place
        ("广州市工业和信息化委答复岳朝阳委员的提案,提案题目是什么?", ["广州市"]),  # 朝阳 ends a person's name
    ],
)
def test_named_places(question, places):
    assert named_places(question) == places


def test_kinds_of_several_places_and_of_several_facts_about_one_reply():
    lex = _Lex()
    assert analyze("广州和信阳在组建创新联合体方面各做了什么?", lex).kind == "comparative"
    assert analyze("天津市的两份答复对杀手锏产品的支持分别给出了什么数据?", lex).kind == "comparative"
    # 分别 over facts about one reply is a meta question, not a comparison of places
    p = analyze("财政部对第5805号建议的答复,发文字号和发文日期分别是什么?", lex)
    assert p.kind == "meta" and p.meta == ["doc_number", "date"]
    # 会同了哪些单位 asks about one reply's co-handlers, not about several replies
    assert analyze("天津市科委答复刘晓明委员的提案时会同了哪些单位?答复日期是哪天?", lex).kind == "meta"


def test_meta_intents_topic_cosigners_proposer():
    assert meta_intents("第4号建议是哪位代表提出的?建议的主题是什么?") == ["addressee", "topic"]
    assert "cosigners" in meta_intents("第58号提案,除郑超委员外,还有哪几位委员联名提出?")
    assert meta_intents("这份提案的答复是哪天发布的?提案人是谁?") == ["addressee", "date"]
    assert meta_intents("今年营商环境活动的主题是什么?") == []  # a topic of something else
    assert meta_intents("沈阳还有哪些支持政策?") == []


def test_list_questions_are_section_questions_not_figures():
    assert asks_for_section("在介绍全省民营经济发展基本情况时讲了哪几点?")
    assert asks_for_section("从哪几个方面进行了说明?") and not asks_number("从哪几个方面进行了说明?")
    assert asks_for_section("建议从哪四个方面提出支持本土企业?")
    assert asks_for_section("在“政策制定和实施情况”方面介绍了什么?")
    assert asks_for_section("针对这条建议,介绍了哪些已有工作?")
    assert not asks_for_section("在融资方面每家企业最高补贴多少?")  # a figure asked
    assert not asks_number("哪几家企业获得了奖励?") and asks_number("有几家企业获得了奖励?")


def test_a_proposal_title_is_no_figure_asked():
    p = analyze("辽宁省工业和信息化厅答复张建国代表关于壮大规上工业企业规模的建议时,结合了哪些部门的协办意见?", _Lex())
    assert not p.parts[0].asks_number  # 规模 is in the proposal's title
    p = analyze("关于壮大规上工业企业规模的建议中,全省规上工业企业有多少家?", _Lex())
    assert p.parts[0].asks_number and p.parts[0].unit == "count:家户"


def test_portal_header_line_is_boilerplate():
    assert is_boilerplate("时间:2022/06/24 09:14:18 来源:威海市环翠区发展和改革局 浏览次数:")
    assert not is_boilerplate("时间:2022年6月,全区举办银企对接会5场。")


REPLY = """source: http://example.invalid/reply
city: 青岛市

关于支持小微企业数字化转型的提案的答复
青财函〔2024〕第17号
发布日期:2024-05-20

王明、李华委员:
您与赵强、孙丽委员提出的《关于支持小微企业数字化转型的提案》收悉,现答复如下:
近年来,市财政局坚持把支持小微企业数字化转型作为重点,出台了一系列扶持政策,全市小微企业数字化水平不断提升。主要开展了以下工作:
一是强化资金引导。设立数字化转型专项资金,每年安排2000万元,对购买工业软件的小微企业给予30%的补助。
二是搭建服务平台。建成“青数通”公共服务平台,累计为1800家小微企业提供诊断服务。
三是培育标杆企业。遴选数字化转型标杆企业50家,每家奖励20万元。
下一步,我们将继续加大支持力度。
青岛市财政局
2024年5月20日
"""


@pytest.fixture(scope="module")
def made_up(tmp_path_factory):
    return pipeline_over(tmp_path_factory.mktemp("madeup"), {"qingdao": REPLY})


def test_announced_list_is_answered_item_by_item(made_up):
    a = made_up.ask("青岛市财政局在支持小微企业数字化转型方面主要开展了哪些工作?")
    assert not a.abstained, a.answer
    for item in ("强化资金引导", "搭建服务平台", "培育标杆企业"):
        assert item in a.answer, a.answer
    assert any(w.get("route") == "list" for w in a.why)
    for c in a.citations:  # every quote is the passage's own words
        for piece in c.quote.split("\n"):
            assert piece in c.text


def test_meta_facts_stated_as_the_reply_states_them(made_up):
    a = made_up.ask("这份提案是哪几位委员联名提出的?提案的主题是什么?")
    assert "赵强、孙丽" in a.answer and "关于支持小微企业数字化转型的提案" in a.answer, a.answer
    a = made_up.ask("青岛市财政局这份答复的发文字号是什么?")
    assert "青财函〔2024〕第17号" in a.answer, a.answer


def test_a_lead_inside_an_item_does_not_list_its_siblings():
    """一是…。编制上市行动方案。二是… : the sentence about 上市 is part of item 一是, and 二是/三是 are its siblings, not
    its list (the chunker's item heading tells it, even when the item was cut into several passages)."""
    from rag.answer import listed_items
    from rag.types import Chunk

    def chunk(i, text, path):
        return Chunk(chunk_id=f"d#{i}", doc_id="d", ordinal=i, text=text, section_path=path, city="某市", date="")

    head = ["一、融资方面", "一是建立金融服务机制"]
    inside = chunk(1, "编制推动企业上市行动方案,推动企业上市。", head)
    rest = chunk(2, "二是落实金融政策。建立激励机制。\n三是加大创投基金供给。设立天使基金。", ["一、融资方面", "二是落实金融政策"])
    assert listed_items([inside, rest], inside, lambda s: "上市" in s) is None
    lead = chunk(3, "围绕企业上市,主要开展了以下工作:\n一是建立上市后备库。\n二是给予上市奖励。", ["二、上市方面"])
    found = listed_items([lead], lead, lambda s: "上市" in s)
    assert found is not None and len(found[1]) == 2


_EXPERTS_A = """source: http://example.invalid/ja
city: 济南市

关于推进创新型城市建设的建议的答复
济南市科技局将组织专家对试点建设方案进行评议咨询,争取尽快获批。
"""
_EXPERTS_B = """source: http://example.invalid/yt
city: 烟台市

关于推进创新型城市建设的建议的答复
烟台市科技局组织12名专家对试点建设方案进行了评议咨询。
"""


@pytest.fixture(scope="module")
def two_cities(tmp_path_factory):
    return pipeline_over(tmp_path_factory.mktemp("experts"), {"jinan": _EXPERTS_A, "yantai": _EXPERTS_B})


def test_a_comparative_figure_question_lists_only_replies_stating_a_figure(two_cities):
    """济南和烟台评议试点方案的专家组各有多少名专家?: 烟台 states 12名, 济南 only that experts were asked."""
    a = two_cities.ask("济南和烟台组织评议试点建设方案的专家组各有多少名专家?")
    assert not a.abstained and "12名" in a.answer, a.answer
    assert {c.doc_id for c in a.citations} == {"yantai"}
    assert two_cities.ask("济南和烟台组织评议试点建设方案的专家各有多少人?").citations[0].doc_id == "yantai"


def test_a_heading_in_traditional_characters_matches_a_simplified_question():
    from rag.textproc import heading_match

    assert heading_match("二、關于增強民營企業核心競爭力的問題", "秭归县在增强民营企业核心竞争力方面做了哪些工作?") > 0.7
    assert heading_match("二、關于增強民營企業核心競爭力的問題", "秭归县在增强民营企业核心竞争力方面做了哪些工作?") == heading_match(
        "二、关于增强民营企业核心竞争力的问题", "秭归县在增强民营企业核心竞争力方面做了哪些工作?")


_PLATFORM_A = """source: http://example.invalid/wh
city: 武汉市

关于优化金融服务的建议的答复
支持完善“汉融通”平台,提高中小微企业融资覆盖面、可得性和便利度。
"""
_PLATFORM_B = """source: http://example.invalid/wf
city: 潍坊市

关于优化金融服务的建议的答复
市地方金融监管局搭建政金企对接平台,增强对小微企业融资支持的精准性。
"""


def test_a_quote_of_one_place_does_not_drop_the_other_place(tmp_path_factory):
    """武汉的“汉融通”平台和潍坊的政金企对接平台分别…: the quote is 武汉's; 潍坊's reply still gets its line."""
    p = pipeline_over(tmp_path_factory.mktemp("quote2"), {"wh": _PLATFORM_A, "wf": _PLATFORM_B})
    a = p.ask("武汉支持完善的“汉融通”平台和潍坊搭建的政金企对接平台,分别是为了提高中小微企业融资的哪些方面?")
    assert not a.abstained and {c.doc_id for c in a.citations} == {"wh", "wf"}, a.answer
    assert "可得性" in a.answer and "精准性" in a.answer
