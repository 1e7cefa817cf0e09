"""The English lead line of extractive answers to English questions (rag.english)."""
from decimal import Decimal

import pytest

from rag.english import english_lead, english_refusal, figure, money
from rag.types import Citation
from rag.verify import find_numbers


def cit(n: int, city: str = "营口市") -> Citation:
    return Citation(n=n, doc_id="d", city=city, title="t", section="s", text="x", score=1.0)


@pytest.mark.parametrize("value, text", [
    (Decimal(2000), "CNY 2,000"),
    (Decimal(5_000_000), "CNY 5 million"),
    (Decimal(150_000_000), "CNY 150 million"),
    (Decimal(1_500_000_000), "CNY 1.5 billion"),
    (Decimal("2.5"), "CNY 2.5"),
])
def test_money(value, text):
    assert money(value) == text


@pytest.mark.parametrize("sentence, expected", [
    ("博士每月2000元", "CNY 2,000 per month (每月2000元)"),
    ("给予最高50万元奖励", "up to CNY 500,000 (最高50万元)"),
    ("走访企业306家", "306 firms (306家)"),
    ("贷款利率下降0.5个百分点", "0.5 percentage points (0.5个百分点)"),
    ("占比达到35%", "35% (35%)"),
    ("全年累计1.2亿元", "in total CNY 120 million (累计1.2亿元)"),
    ("发放贷款1.2亿元", "CNY 120 million (1.2亿元)"),
])
def test_figure(sentence, expected):
    m = find_numbers(sentence)[0]
    assert figure(m, sentence) == expected


def test_lead_names_each_figure_with_its_own_citation_and_the_place():
    answer = "对博士每月补贴2000元[1]。\n2021年3月22日共走访企业306家[2]。"
    lead = english_lead(answer, [cit(1), cit(2)])
    assert lead.startswith("From the reply of Yingkou (营口市): ")
    assert "CNY 2,000 (2000元) [1]" in lead
    assert "306 firms (306家) [2]" in lead
    assert "2021" not in lead and "22" not in lead  # a date is not a figure


def test_lead_without_figures_points_to_the_quotes():
    lead = english_lead("加强融资担保体系建设[1]。", [cit(1, "沈阳市")])
    assert "Shenyang (沈阳市)" in lead and "[1]" in lead


def test_no_citations_no_lead():
    assert english_lead("资料中未找到能回答该问题的内容。", []) == ""


def test_refusal_keeps_the_chinese_and_names_unknown_places():
    text = english_refusal("资料中未找到关于拉萨市的答复,无法回答该问题。", ["拉萨市"])
    assert text.startswith("No reply about Lhasa (拉萨市) is indexed") and "拉萨市的答复" in text
    assert english_refusal("资料中未找到能回答该问题的内容。").startswith("The indexed replies do not answer")


def test_a_quote_of_several_sentences_closed_by_one_marker_gives_all_its_figures():
    answer = "累计增加首贷户719户。续贷服务中心为851户企业投放贷款7.4亿元[1]。"
    lead = english_lead(answer, [cit(1, "沈阳市")])
    assert "719" in lead and "851" in lead and "CNY 740 million" in lead


def test_comparative_answer_names_each_figures_place():
    answer = "沈阳市:首贷户719户[1]。\n营口市:贴息300万元[2]。"
    lead = english_lead(answer, [cit(1, "沈阳市"), cit(2, "营口市")])
    assert lead.startswith("From the replies of Shenyang (沈阳市), Yingkou (营口市): ")
    assert "Shenyang (沈阳市): 719 firms/households (719户) [1]" in lead
    assert "Yingkou (营口市): CNY 3 million (300万元) [2]" in lead


def test_about_figures_say_over():
    m = find_numbers("征集1070余项需求")[0]
    assert figure(m, "征集1070余项需求") == "over 1,070 items (1070余项)"
