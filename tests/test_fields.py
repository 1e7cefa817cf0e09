"""A reply's labelled record (索 引 号:…, 法规分类:…, 主办单位: | … |): header fields (rag.textproc.header_fields,
asked_fields) and the answerer's field route, end to end on made-up replies in their own index; and the kinds of
figure a question asks that no other figure answers (哪一天 → a date, 多少份/多少件 → that measure word)."""
from __future__ import annotations

import pytest

from rag.textproc import Field, asked_fields, asks_number, header_fields, unit_kind

from conftest import pipeline_over

RECORD = """索 引 号:QD00101-02-00-2024-031
    备注/文号:青工信提函〔2024〕12号
    发布机构:青岛市工业和信息化局
建议类型: | 大会期间建议 | 主办单位(分办单位): | 市工信局 | 协办单位: | 市财政局 |
王明委员:
一是加强服务:建立企业服务专员制度，覆盖全部规上企业。
"""


def test_header_fields_are_the_records_label_value_pairs():
    got = [(f.label, f.value) for f in header_fields(RECORD)]
    assert got == [("索 引 号", "QD00101-02-00-2024-031"), ("备注/文号", "青工信提函〔2024〕12号"), ("发布机构", "青岛市工业和信息化局"),
                   ("建议类型", "大会期间建议"), ("主办单位(分办单位)", "市工信局"), ("协办单位", "市财政局")]
    # a salutation (王明委员:) has no value and a body sentence (一是加强服务:建立…，…。) is no field
    f = header_fields(RECORD)[0]
    assert RECORD[f.start:f.end] == "索 引 号:QD00101-02-00-2024-031"


@pytest.mark.parametrize("label, names", [
    ("索 引 号", ["索引号"]), ("主办单位(分办单位)", ["主办单位", "分办单位"]), ("备注/文号", ["备注", "文号"]),
    ("建议办理类型", ["建议办理类型", "办理类型"]), ("建议类型", ["建议类型"]),  # the proposal's word aside, 4 characters left
])
def test_field_names_ignore_spaces_brackets_and_alternatives(label, names):
    assert Field(label, "x", 0, 1).names() == names


@pytest.mark.parametrize("question, labels", [
    ("这份答复的索引号是什么?", ["索 引 号"]),
    ("主办单位和协办单位分别是哪个部门?", ["主办单位(分办单位)", "协办单位"]),
    ("答复的文号是什么?", []),  # a two-character label is too common a word (the docno route answers 文号)
    ("青岛市对企业服务专员有什么安排?", []),
])
def test_asked_fields_are_named_by_a_label_of_three_characters_or_more(question, labels):
    assert [f.label for f in asked_fields(question, RECORD, 3)] == labels


@pytest.mark.parametrize("question, kind", [
    ("专题讲座是哪一天举行的?", "date"), ("大会在哪天召开?", "date"), ("活动几号举办?", "date"),
    ("一共回收了多少份有效问卷?", "measure:份"), ("累计受理了多少件投诉?", "measure:件"), ("走访了多少家企业?", "count:家户"),
    ("By how much did ChatZOC raise patient service efficiency?", "change"),  # any figure: 提升可达75%
    ("How much did loans to SMEs increase in 2023?", "change"), ("How much interest subsidy did the center provide?", "money"),
])
def test_the_kind_of_figure_asked(question, kind):
    assert asks_number(question) and unit_kind(question) == kind


REPLY = """source: http://example.invalid/r
city: 青岛市

""" + RECORD + """您提出的“关于加强企业服务的提案”收悉。现答复如下:
一、完善服务机制
全市共有服务专员320名，累计走访企业1500家。
"""


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return pipeline_over(tmp_path_factory.mktemp("fields"), {"qd_r": REPLY})


def test_a_question_naming_a_field_gets_its_value_quoted(pipe):
    a = pipe.ask("青岛市工信局答复王明委员的提案,主办单位和协办单位分别是哪个部门?")
    assert not a.abstained and "市工信局" in a.answer and "市财政局" in a.answer, a.answer
    assert any(w.get("route") == "field" for w in a.why), a.why
    for c in a.citations:  # each quoted field is verbatim in the passage
        for piece in c.quote.split("\n"):
            assert piece in c.text, piece
    a = pipe.ask("青岛市这份答复的索引号是什么?")
    assert "QD00101-02-00-2024-031" in a.answer, a.answer


def test_a_count_of_another_measure_word_is_refused(pipe):
    a = pipe.ask("青岛市企业服务专员一共回收了多少份调查问卷?")
    assert a.abstained, a.answer


def test_an_english_question_names_a_field_through_the_glossary(eval_pipeline):
    """handling type and content classification are the record's 建议办理类型 and 内容分类 (四川省's record)."""
    a = eval_pipeline.ask("In Sichuan's record of the suggestion on Yibin's bid to become a national innovative pilot city, what is its handling type and content classification?")
    assert not a.abstained and "政府类" in a.answer and "地区发展" in a.answer, a.answer
    assert any(w.get("route") == "field" for w in a.why)
