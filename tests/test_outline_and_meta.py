"""What a whole reply does, and what several replies say about themselves: the outline route (rag.answer
ExtractiveAnswerer._outline), the meta facts of each reply a question names (_meta_per_document), the reply's date
and the departments it was studied with, and every place a comparison names — on made-up replies ingested into
their own index (no bundled reply in it), end to end through the pipeline."""
from __future__ import annotations

import pytest

from rag.answer import _written_date
from rag.plan import analyze, meta_intents

from conftest import pipeline_over

# two replies of one bureau, each with its proposal number, an opening that names the departments it was
# studied with, top-level items (一、二、三、) without a sentence announcing them, and a date inside a sentence of
# the opening that is another event's
REPLY_A = """source: http://example.invalid/a
city: 青岛市

关于市政协十四届三次会议第0412号提案的答复
发布日期:2023-07-14
答复类别:A类

王明委员:
您提出的“关于推动海洋装备企业梯度培育的提案”收悉。经会同市科技局、市财政局、市市场监管局研究,现答复如下:
2022年6月1日,国家印发《优质中小企业梯度培育管理暂行办法》,为企业梯度培育提供了依据。
一、建立梯度培育库
全市建立海洋装备企业培育库,入库企业320家,实行动态管理。
二、加大资金支持
对新认定的专精特新中小企业给予一次性奖励20万元。
三、强化融资服务
搭建“海融通”线上平台,累计为企业融资45亿元。
"""

REPLY_B = """source: http://example.invalid/b
city: 青岛市

关于市政协十四届四次会议第0587号提案的答复
发布日期:2024-06-03
B类

李华委员:
您提出的“关于支持远洋渔业企业转型的提案”收悉。经会同市农业农村局研究,现答复如下:
一、推动船队更新
支持企业更新远洋渔船18艘。
二、拓展精深加工
建成水产品加工园区2个。
"""

REPLY_C = """source: http://example.invalid/c
city: 烟台市

关于支持海洋装备企业融资的建议的答复
发布日期:2023-09-01

赵强代表:
您提出的建议收悉,现答复如下:
烟台市搭建“烟融汇”线上金融服务平台,为海洋装备企业对接融资需求。
"""


@pytest.fixture(scope="module")
def replies(tmp_path_factory):
    return pipeline_over(tmp_path_factory.mktemp("outline"), {"qd_a": REPLY_A, "qd_b": REPLY_B, "yt_c": REPLY_C})


def _quotes_are_verbatim(a):
    for c in a.citations:
        for piece in c.quote.split("\n"):
            assert piece in c.text, piece


def test_what_a_whole_reply_does_is_its_outline(replies):
    a = replies.ask("青岛市答复王明委员关于推动海洋装备企业梯度培育的提案时,采取了哪些措施?")
    assert not a.abstained, a.answer
    for item in ("建立梯度培育库", "加大资金支持", "强化融资服务"):
        assert item in a.answer, a.answer
    assert "收悉" not in a.answer  # the acknowledgement repeats the question, it answers none of it
    assert any(w.get("route") == "outline" for w in a.why), a.why
    _quotes_are_verbatim(a)


def test_the_departments_a_reply_was_studied_with(replies):
    a = replies.ask("青岛市对第0412号提案的答复是会同哪些部门研究的?")
    for dept in ("市科技局", "市财政局", "市市场监管局"):
        assert dept in a.answer, a.answer


def test_the_reply_date_is_not_another_event_date(replies):
    a = replies.ask("青岛市对第0412号提案的答复是哪天发布的?")
    assert "2023年7月14日" in a.answer and "2023-07-14" in a.answer, a.answer
    assert "2022年6月1日" not in a.answer


def test_two_proposals_named_get_each_reply_facts(replies):
    a = replies.ask("青岛市对第0412号提案和第0587号提案的答复,分别是答复谁的?")
    assert "王明" in a.answer and "李华" in a.answer, a.answer
    assert len(a.answer.split("\n")) == 2  # one line per reply


def test_every_place_a_comparison_names_gets_its_line(replies):
    a = replies.ask("青岛、烟台两地的答复中,各自用来对接企业融资需求的线上平台叫什么?")
    assert "海融通" in a.answer and "烟融汇" in a.answer, a.answer


def test_the_plan_of_these_questions():
    class Lex:
        def cities(self):
            return ["青岛市", "烟台市", "岳阳市"]

    assert meta_intents("是会同哪些部门研究答复的?") == ["consulted"]
    assert "consulted" in meta_intents("Which bodies did the Tianjin Science and Technology Commission consult when answering it?")
    assert meta_intents("这份答复属于哪一类答复?") == ["category"]
    assert meta_intents("答复类别是什么?") == ["category"]
    assert "category" in meta_intents("What is the category of the reply to member Wang?")
    assert meta_intents("有哪几类企业可以申请?") == []  # kinds of firms, not the reply's category
    assert meta_intents("发布时间是哪天?") == ["date"]
    assert "date" in meta_intents("When was Yuanbao District's reply to member Jia Fan published?")
    assert meta_intents("这是第几号建议?") == ["number"]
    assert "topic" in meta_intents("答复的是哪位委员的什么提案?")
    assert "topic" not in meta_intents("这份建议被列为什么建议案?")
    assert "addressee" in meta_intents("两份答复分别是答复谁的?")
    assert "doc_number" in meta_intents("What is the document number of the Henan department's reply to member Sun?")
    p = analyze("岳阳九大重点产业链分别由哪些市领导担任链长?", Lex())
    assert p.kind != "comparative"  # 哪些市领导 are people, not places
    p = analyze("青岛、烟台两地的答复中,各自的线上平台叫什么?", Lex())
    assert p.kind == "comparative" and not {"两地", "各自"} & set(p.terms)
    assert analyze("明光市开展了哪些方面的工作?", Lex()).parts[0].asks_measures
    assert not analyze("武汉引用了习近平总书记的哪些重大论断?", Lex()).parts[0].asks_measures
    assert analyze("参会的5家银行分别是哪几家?", Lex()).parts[0].asks_name
    assert analyze("青岛市答复王明委员关于梯度培育的提案时,采取了哪些措施?", Lex()).about_reply
    assert not analyze("青岛市在梯度培育方面采取了哪些措施?", Lex()).about_reply
    # an aspect named: its section answers, not the outline
    assert not analyze("青岛市答复王明委员的提案时,在梯度培育方面采取了哪些措施?", Lex()).about_reply
    assert meta_intents("是会同哪些部门共同研究推进“红顶中介”整治工作的?") == []  # a work's partners, not the reply's


@pytest.mark.parametrize("iso, written", [
    ("2019-12-30", "2019年12月30日(2019-12-30)"),
    ("2019-09-07", "2019年9月7日(2019-09-07)"),
    ("2019", "2019年"),
    ("n/a", "n/a"),
])
def test_a_metadata_date_is_written_as_the_replies_write_it(iso, written):
    assert _written_date(iso) == written


def test_the_reply_category_is_quoted_from_its_line(replies):
    """答复类别:A类 (or a bare B类 line in a portal's header) answers which category a reply is; a reply that
    states none is refused; two replies asked together each give their own."""
    a = replies.ask("第0412号提案的答复属于哪一类答复?")
    assert not a.abstained and "A类" in a.answer and a.citations[0].doc_id == "qd_a", a.answer
    both = replies.ask("第0412号提案和第0587号提案的答复分别是哪一类答复?")
    assert not both.abstained and "A类" in both.answer and "B类" in both.answer, both.answer
    assert {c.doc_id for c in both.citations} == {"qd_a", "qd_b"}
    assert replies.ask("烟台市赵强代表的建议的答复类别是什么?").abstained


def test_replies_to_two_named_members_each_give_their_own_facts(replies):
    """答复王明委员和李华委员时,分别会同了哪些部门?: the two replies whose openings name them, each quoted."""
    from rag.plan import PROPOSER

    assert PROPOSER.findall("答复林平代表(数字经济)和答复钟文新委员时") == ["林平", "钟文新"]
    assert PROPOSER.findall("市人大代表提出的建议") == []
    assert replies.retriever.analyze("青岛市答复王明委员和李华委员时,分别会同了哪些部门研究?").proposers == ["王明", "李华"]
    a = replies.ask("青岛市答复王明委员和李华委员时,分别会同了哪些部门研究?")
    assert not a.abstained and {c.doc_id for c in a.citations} == {"qd_a", "qd_b"}, a.answer
    assert "市科技局" in a.answer and "市农业农村局" in a.answer
