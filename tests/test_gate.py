"""The verification gate (rag.gate): one table per rule, then the whole check."""
from __future__ import annotations

import pytest

from rag import gate
from rag.gate import GateInput, check, english_share, is_english

P1 = "营口市 营口市人力资源和社会保障局 2024-06-05\n对新引进的博士研究生，每月给予2000元生活补贴，连续发放3年。"
P2 = "沈阳市 沈阳市工业和信息化局\n对首贷户给予贴息，最高不超过10万元。2023年共为719户企业发放首贷。"
P3 = "郑州市 郑州市工业和信息化局\n对首次认定的国家级专精特新“小巨人”企业，给予一次性奖励2000万元。"
PASSAGES = [P1, P2, P3]
REFUSAL = "资料中未找到能回答该问题的内容。"
SYSTEM = "你是严谨的政务问答助手，负责根据政府部门对人大代表建议、政协委员提案的答复回答关于中小企业政策的问题。"


def inp(text: str, **kw) -> GateInput:
    kw.setdefault("passages", PASSAGES)
    kw.setdefault("refusal", REFUSAL)
    kw.setdefault("secrets", [SYSTEM])
    kw.setdefault("allowed", ["资料中未找到相关内容"])
    return GateInput(text=text, **kw)


def failed(text: str, rule: str, **kw) -> list[str]:
    return gate.RULES[rule](inp(text, **kw))


CASES = {
    "content": [
        ("营口市对博士每月补贴2000元。[1]", True),
        ("", False),
        ("[1][2]", False),
        ("。。。", False),
    ],
    "citations": [
        ("营口市对博士每月补贴2000元。[1]", True),
        ("营口市对博士每月补贴2000元。[1] 沈阳市对首贷户贴息。[2]", True),
        ("营口市对博士每月补贴2000元。", False),  # no marker
        ("营口市对博士每月补贴2000元。[4]", False),  # no passage 4
        ("营口市对博士每月补贴2000元。[1][7]", False),
        ("〔城市〕:\n营口市: 每月2000元[1]", True),  # a heading needs no marker
        (REFUSAL, True),  # the refusal needs none
        ("营口市: 每月2000元[1]\n天津市: 资料中未找到相关内容", True),
        ("营口市对博士每月补贴2000元[1]，连续发放3年。此外还有住房补贴。", False),
    ],
    "numbers": [
        ("营口市对博士每月补贴2000元。[1]", True),
        ("营口市对博士每月补贴2,000元。[1]", True),
        ("营口市对博士每月补贴两千元。[1]", True),  # by value
        ("营口市对博士每月补贴2500元。[1]", False),
        ("营口市对博士每月补贴2000元。[2]", False),  # the number is in passage 1, the sentence cites 2
        ("首贷户贴息最高10万元。[2]", True),
        ("首贷户贴息最高100000元。[2]", True),
        ("2023年共为719户企业发放首贷。[2]", True),
        ("2023年共为720户企业发放首贷。[2]", False),
        ("该答复于2024年发布。[1]", True),  # the year of the date field
        ("一次性奖励2000万元。[3]", True),
        ("一次性奖励2000万元。[1][3]", True),  # in one of the cited passages
    ],
    "english_numbers": [
        ("Yingkou pays doctoral graduates CNY 2,000 per month (每月2000元生活补贴) [1].", True),
        ("Yingkou pays CNY 2,500 per month (每月2000元) [1].", False),
        ("Zhengzhou awards CNY 20 million (2000万元) to a first-time little giant [3].", True),
        ("Zhengzhou awards CNY 30 million (2000万元) [3].", False),
        ("The subsidy runs for 3 years (连续发放3年) [1].", True),
        ("In 2023, 719 enterprises got a first loan (719户) [2].", True),
        ("In 2022, 719 enterprises got a first loan [2].", False),
        ("营口市每月补贴2000元。[1]", True),  # Chinese: the numbers rule's business
    ],
    "repetition": [
        ("营口市对博士每月补贴2000元。[1]沈阳市对首贷户给予贴息。[2]", True),
        ("请回答：" * 12, False),
        ("营口市对博士每月补贴2000元。[1]\n" * 3, False),
        ("对首贷户给予贴息。[2]对首贷户给予贴息。[2]对首贷户给予贴息。[2]", False),
        ("奖励100000000元。[3]", True),  # zeros are no loop
        ("对首贷户给予贴息。[2]对首贷户给予贴息。[2]", True),  # a short sentence twice is not a loop
        # a whole sentence said twice is (the 1.5B filling a translation's items: h048, h051, q116)
        ("The balance was CNY 211.07 billion (2110.7亿元).[1] It grew 24.5%.[1] The balance was CNY 211.07 billion (2110.7亿元).[1]", False),
    ],
    "echo": [
        ("营口市对博士每月补贴2000元。[1]", True),
        (SYSTEM + "[1]", False),  # the system prompt repeated
        ("〔城市A〕: 〔该城市资料中的做法〕[1]", False),  # the template's placeholders
        ("沈阳市: ……[1]\n营口市: ……[2]", False),  # the old template's example lines
        ("城市：营口市\n正文：每月2000元[1]", False),  # a passage header
        ('{"refusal": false, "sentences": [{"text": "每月2000元", "citations": [1]}]}', False),
        ("<passage id=1>每月2000元[1]", False),
        ("城市名:营口市[1]", False),  # the template's word
        ("The document No. [number] was issued by Shanghai.[1]", False),  # an English placeholder the model made up
        ("Build the libraries”,“citations”:[]},{[1] By 2025 there will be 3,000 (3000家).[1]", False),  # JSON in curly quotes (b043)
    ],
    "figure": [
        ("营口市对博士每月补贴2000元。[1]", True),
        ("城市名:营口市[1]", False),  # what a 0.5B model wrote for 营口市对博士每月补贴多少?
        ("营口市对博士给予生活补贴。[1]", False),
        ("补贴连续发放三年。[1]", True),
        (REFUSAL, True),  # a refusal is the refusal rule's business
    ],
    "no_reply": [
        (REFUSAL, True),
        ("资料中未找到关于广州市的答复,无法回答该问题。", True),
        ("广州市对博士每月补贴2000元。[1]", False),
    ],
    "refusal": [
        ("营口市对博士每月补贴2000元。[1]", True),
        (REFUSAL, False),  # the extractive answerer answered: a refusal is not shown instead
    ],
    "unfinished": [
        ("营口市对博士每月补贴2000元。[1]", True),
        ("Yingkou gives doctoral graduates CNY 2,000 (2000元) a month.[1]", True),
        ("The CPPCC members who submitted the proposal that Shanghai answered in May 2023 are:[1]", False),  # h053, 1.5B
        ("沈阳市采取的措施主要包括：[1]", False),
        ("沈阳市采取的措施主要包括[1]", False),
        ("The measures include[1]", False),
        ("Support covers loans, guarantees and[1]", False),
    ],
}


@pytest.mark.parametrize("rule,text,ok", [(r, t, ok) for r, cases in CASES.items() for t, ok in cases])
def test_rule(rule, text, ok):
    kw = {"unknown_places": ["广州市"]} if rule == "no_reply" else {"asks_figure": True} if rule == "figure" else {}
    problems = failed(text, rule, **kw)
    assert (not problems) == ok, problems


def test_refusal_rule_when_extractive_refused_too():
    assert not failed(REFUSAL, "refusal", extractive_abstained=True)


def test_a_good_answer_passes_every_rule():
    text = "营口市对新引进的博士研究生每月给予2000元生活补贴。[1]沈阳市对首贷户给予贴息，最高不超过10万元。[2]"
    res = check(inp(text))
    assert res.passed, res.reason
    assert res.to_dict() == {"passed": True, "failures": []}


def test_an_english_answer_with_the_chinese_beside_the_figures_passes():
    text = "Yingkou gives newly recruited doctoral graduates a living subsidy of CNY 2,000 per month (每月2000元) [1]. It is paid for 3 years (连续发放3年) [1]."
    res = check(inp(text, language="en"))
    assert res.passed, res.reason


def test_failures_name_their_rules_and_read_as_one_line():
    text = "营口市对博士每月补贴2500元。[1]广州市也有补贴。"
    res = check(inp(text, unknown_places=["广州市"]))
    assert not res.passed
    assert res.rules == ["citations", "numbers", "no_reply"]
    assert "2500元" in res.reason and "\n" not in res.reason


def test_an_empty_answer_is_only_reported_as_empty():
    res = check(inp("  "))
    assert res.rules == ["content"]


def test_english_share():
    assert is_english("Yingkou pays CNY 2,000 per month (每月2000元) [1].")
    assert not is_english("营口市对博士每月补贴2000元。[1]")
    assert english_share("") == 0.0


@pytest.mark.parametrize("text,ok", [
    ("截至2019年底,山东全省民营经济市场主体有1022.5万户。[1]", True),
    ("截至2019年底,山东全省民营经济市场主体有多少户?[1]", False),  # the question said back (0.5B did this)
    ("二道区工信局联合多部门为国企等企业搭台，办的是产业链供需对接会。[1]", False),  # only the question's words
    ("二道区工信局办的是建材产业链供需对接会，共有30余家企业参加。[1]", True),
])
def test_restates_rule(text, ok):
    q = "截至2019年底,山东全省民营经济市场主体有多少户?" if "山东" in text else "二道区工信局联合多部门为国企等企业搭台,办的是哪场产业链供需对接会?"
    assert (not gate.rule_restates(inp(text, question=q))) == ok


@pytest.mark.parametrize("text,language,ok", [
    ("Yingkou pays CNY 2,000 per month (每月2000元) [1].", "en", True),
    ("营口市对博士每月补贴2000元。[1]", "en", False),  # an English question answered in Chinese
    ("营口市对博士每月补贴2000元。[1]", "zh", True),
    ("The replies do not say.", "en", True),  # the rule judges the language only
])
def test_language_rule(text, language, ok):
    assert (not gate.rule_language(inp(text, language=language))) == ok


def test_an_english_refusal_is_not_a_language_failure():
    assert not gate.rule_language(inp(REFUSAL, language="en", refusal=REFUSAL))


def test_a_scaled_english_figure_must_match_by_value():
    p = ["云南省 民营经济实现增加值3239.00亿元，占全省GDP的50.1%。"]
    assert gate.rule_english_numbers(inp("Value added was 3239.00 million yuan (3239.00亿元) [1].", passages=p))
    assert not gate.rule_english_numbers(inp("Value added was CNY 323.9 billion (3239.00亿元) [1].", passages=p))
    assert not gate.rule_english_numbers(inp("It was 50.1% of GDP [1].", passages=p))


@pytest.mark.parametrize("units,text,ok", [
    (["money"], "2018-08-09[1]", False),  # a date is never the answer to an amount question
    (["money"], "The fund holds 1亿元 (2018-08-09) [1].", True),
    (["date"], "2018-08-09[1]", True),
    ([], "2018-08-09[1]", True),  # the plan named no kind of figure: any figure will do
])
def test_figure_rule_refuses_a_date_for_an_amount(units, text, ok):
    assert (not gate.rule_figure(inp(text, asks_figure=True, asked_units=units))) == ok


@pytest.mark.parametrize("text,ok", [
    ("营口市对博士每月补贴2000元，硕士1000元。[1]", True),
    ("Yingkou pays doctors CNY 2,000 (每月2000元) and masters CNY 1,000 a month [1].", True),  # by value, any language
    ("营口市对博士每月补贴2000元。[1]", False),  # drops a figure the extractive answer states
    ("营口市对博士给予生活补贴。[1]", False),
])
def test_omits_rule(text, ok):
    problems = gate.rule_omits(inp(text, expected=["2000元", "1000元"], min_expected=1.0))
    assert (not problems) == ok, problems


def test_omits_rule_share_and_refusals():
    assert not gate.rule_omits(inp("营口市对博士每月补贴2000元。[1]", expected=["2000元", "1000元"]))  # the default: half of them
    assert not gate.rule_omits(inp(REFUSAL, expected=["2000元"], extractive_abstained=True))
    assert not gate.rule_omits(inp("营口市对博士给予生活补贴。[1]"))  # the extractive answer stated no figure


def test_an_english_answer_with_its_own_figure_does_not_restate_the_question():
    q = "How much monthly living allowance does Yingkou pay to master's graduates who take jobs at local enterprises?"
    a = "Yingkou pays a monthly living allowance of 1000 yuan to master's graduates who take jobs at local enterprises.[1]"
    assert not gate.rule_restates(inp(a, question=q))
    assert gate.rule_restates(inp("Yingkou pays a monthly living allowance to master's graduates who take jobs at local enterprises.[1]", question=q))


@pytest.mark.parametrize("text,ok", [
    ("Chongqing aims to add CNY 100 billion (1000亿元) of loans within three years [1].", True),
    ("Chongqing aims to add 100 billion yuan of loans within three years [1].", False),  # no Chinese original
    ("As of March 2024, Zhengzhou had 109 (109家) little giants [1].", True),  # a year needs none
    ("In 2023 it rose by 5.3% (增长5.3%) [1].", True),
])
def test_originals_rule(text, ok):
    problems = gate.rule_originals(inp(text, language="en"))
    assert (not problems) == ok, problems
    assert not gate.rule_originals(inp(text, language="zh"))


def test_every_rule_function_is_in_the_gate():
    names = {n[len("rule_"):] for n in dir(gate) if n.startswith("rule_") and callable(getattr(gate, n))}
    assert names == set(gate.RULES), names ^ set(gate.RULES)
    assert gate.check(inp("Guangzhou's document number is 1398 [1].", language="en", passages=["广州市 穗字1398号"])).rules == ["originals"]


SHENYANG = ["沈阳市 沈阳市工业和信息化局\n截至上半年，全市绿色贷款余额2110.7亿元。"]


@pytest.mark.parametrize("text, ok", [
    # a place the model made up beside the right one (the 1.5B on h048), and another city of the same province
    ("The balance in Shenyang (Shanghai) was CNY 211.07 billion (2110.7亿元).[1]", False),
    ("大连市绿色贷款余额2110.7亿元。[1]", False),
    # the passage's place, by its English, full or short name, or its province
    ("The balance in Shenyang was CNY 211.07 billion (2110.7亿元).[1]", True),
    ("Liaoning's Shenyang reached CNY 211.07 billion (2110.7亿元).[1]", True),
    ("沈阳绿色贷款余额2110.7亿元。[1]", True),
    ("The green loan balance was CNY 211.07 billion (2110.7亿元).[1]", True),  # no place named
    ("Shanghai did this.", True),  # uncited: the `citations` rule speaks, not this one
])
def test_places_rule(text, ok):
    problems = gate.rule_places(inp(text, passages=SHENYANG))
    assert (not problems) == ok, problems


@pytest.mark.parametrize("text, ok", [
    ("The regulations took effect on July 2, 2020.[1]", True),  # 2020年7月2日 in the passage
    ("The regulations took effect on 2 July 2020.[1]", True),
    ("The regulations took effect on July 3, 2020.[1]", False),  # a date the passage does not state
    ("By the end of November 2020, loans grew 45.5%.[1]", True),  # the year is the question's
    ("By the end of November 2019, loans grew 45.5%.[1]", False),
])
def test_english_dates_are_checked_as_dates(text, ok):
    passage = "上海市\n《上海市优化营商环境条例》于2020年7月2日起施行。11月末普惠小微贷款同比增长45.5%。"
    i = inp(text, passages=[passage], question="By the end of November 2020, how fast had loans grown?", language="en")
    assert (not gate.rule_english_numbers(i)) == ok, gate.rule_english_numbers(i)
    assert not gate.rule_originals(i)  # dates need no Chinese original beside them


WUHAN = ("武汉市\n(一)完善政策支持体系。2021 年 10 月,我市在全国主要城市中率先发布支持专精特新企业高质量发展的专项 政策"
         "《武汉市促进中小企业“专精特新”高质量发展行动计划》,2023 年 9月我市印发《加快培育中小企业促进民营经济发展壮大实施方案》,"
         "2025 年3月出台《武汉市进一步促进民营经济高质量发展若干措施》。")
PLAN_TERMS = ["行动", "方案", "计划", "行动计划", "专精", "专精特新", "质量", "政策", "中小", "企业", "小企业", "中小企业"]


@pytest.mark.parametrize("text, ok", [
    ("Wuhan issued the action plan in October 2021 (2021年10月).[1]", True),
    ("Wuhan issued its action plan for 'specialized' SMEs on September 2023.[1]", False),  # b041, the 1.5B: the other plan's date
    ("武汉市于2023年9月发布专精特新行动计划。[1]", False),
    ("武汉市于2021年10月发布专精特新行动计划。[1]", True),
    ("Wuhan issued it in 2021.[1]", True),  # a year alone binds nothing here
])
def test_dates_rule(text, ok):
    problems = gate.rule_dates(inp(text, passages=[WUHAN], terms=PLAN_TERMS))
    assert (not problems) == ok, problems


def test_dates_rule_needs_two_dates_and_terms():
    one = "上海市\n2020年4月10日,我委牵头制定的《上海市优化营商环境条例》经市人大常委会审议通过。"
    assert not gate.rule_dates(inp("It passed on April 10, 2020.[1]", passages=[one], terms=["条例"]))
    assert not gate.rule_dates(inp("It was issued on September 2023.[1]", passages=[WUHAN]))  # no plan terms: nothing to bind


KEPT = ["沈阳", "辽阳", "铁岭", "“雏鹰—瞪羚—领军”", "共80家", "2021 年 10 月"]


@pytest.mark.parametrize("text, ok", [
    ("Meetings were held in Shenyang (沈阳), Liaoyang (辽阳) and Tieling (铁岭) on the (“雏鹰—瞪羚—领军”) system, "
     "80 (80家) banks in all, in October 2021 (2021年10月).[1]", True),
    # a figure by value in English is enough; commas of thousands and spacing do not matter
    ("In Shenyang (沈阳), Liaoyang (辽阳), Tieling (铁岭): the 雏鹰-瞪羚-领军 … no: (雏鹰—瞪羚—领军), 80 banks, (2021年10月).[1]", True),
    # a city of the list dropped, or the quoted name translated away
    ("Meetings were held in Shenyang (沈阳) and Liaoyang (辽阳) on the (“雏鹰—瞪羚—领军”) system, 80 banks, (2021年10月).[1]", False),
    ("In Shenyang (沈阳), Liaoyang (辽阳), Tieling (铁岭) the Lion-Tiger-Leader system, 80 banks, (2021年10月).[1]", False),
    # a quoted name in the glossary's English is kept (雏鹰—瞪羚—领军: eaglet, gazelle, leader)
    ("In Shenyang (沈阳), Liaoyang (辽阳), Tieling (铁岭) the eaglet-gazelle-leader system, 80 banks, (2021年10月).[1]", True),
])
def test_kept_rule(text, ok):
    problems = gate.rule_kept(inp(text, kept=KEPT))
    assert (not problems) == ok, problems
    assert not gate.rule_kept(inp(text))  # not a translation: nothing to keep
