"""The English lead line of extractive answers to English questions (rag.english)."""
from decimal import Decimal

import pytest

from rag.english import drop_echoes, english_lead, english_refusal, figure, kept_originals, money, protect, translation_lines
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


@pytest.mark.parametrize("sentence, expected", [
    # 万 and 亿 are converted by code, not by the model; the Chinese original stays beside the English
    ("规上工业企业达到1.1万家。", "规上工业企业达到 11,000 firms (1.1万家) 。"),
    ("贷款余额16346亿元", "贷款余额 CNY 1634.6 billion (16346亿元)"),
    ("博士每月2000元", "博士 CNY 2,000 per month (每月2000元)"),
    # a count whose noun follows is a bare number (the model translates 企业); a duration keeps its unit word
    ("共有1752家企业", "共有 1,752 (1752家) 企业"),
    ("三年新增867家", "3 years (三年) 新增 867 firms (867家)"),
    # a percentage reads the same in English; a date with a month is written in English
    ("同比增长45.5%", "同比增长45.5%"),
    ("2021 年 10 月,我市发布政策", "October 2021 (2021 年 10 月),我市发布政策"),
    ("6月7日，我局与代表沟通", "June 7 (6月7日)，我局与代表沟通"),
    ("2020年7月2日通过", "July 2, 2020 (2020年7月2日)通过"),
    # a year alone is left to the model; a document number is named, its digits are no figures
    ("2016年，市金融局调整政策", "2016年，市金融局调整政策"),
    ("印发《措施》(穗字〔2008〕18号)", "印发 (《措施》) (document No. (穗字〔2008〕18号))"),
    ("第十七届中博会签约9300万元", "第 17 (十七届) 中博会签约 CNY 93 million (9300万元)"),
    # no figure: nothing changes; line breaks (one quoted sentence per line) are kept
    ("推动科技金融融合发展", "推动科技金融融合发展"),
    # a place by its English name, a name in quotes or a title kept in Chinese, in brackets
    ("在沈阳、铁岭召开现场会", "在 Shenyang (沈阳) 、 Tieling (铁岭) 召开现场会"),
    ("完善“雏鹰—瞪羚—领军”评价机制", "完善 (“雏鹰—瞪羚—领军”) 评价机制"),
    ("印发《行动计划》", "印发 (《行动计划》)"),
    ("发放1.2亿元\n走访306家", "发放 CNY 120 million (1.2亿元)\n走访 306 firms (306家)"),
])
def test_protect_writes_the_figures_a_model_translates_in_english(sentence, expected):
    assert protect(sentence) == expected


def test_translation_lines_put_one_protected_sentence_on_a_line():
    assert translation_lines("全市企业达到1.1万家；三年新增867家。推动融合发展。") == \
        "全市企业达到 11,000 firms (1.1万家) ；\n3 years (三年) 新增 867 firms (867家) 。\n推动融合发展。"
    # a sentence longer than max_chars is cut at its commas into lines of clauses up to that length
    long = "联合开展拨投贷担业务,服务初创期企业投产需求,已有12家企业进入首批试点名单,3家企业1500万元已批复。"
    assert translation_lines(long, max_chars=25).split("\n") == [
        "联合开展拨投贷担业务,服务初创期企业投产需求,", "已有 12 (12家) 企业进入首批试点名单,", "3 (3家) 企业 CNY 15 million (1500万元) 已批复。"]
    assert translation_lines(long, max_chars=200).count("\n") == 0


def test_kept_originals_are_the_brackets_holding_chinese():
    assert kept_originals(protect("2021年10月，沈阳市印发《办法》，共80家，增长5%")) == ["2021年10月", "沈阳市", "《办法》", "共80家"]


@pytest.mark.parametrize("text, expected", [
    ("trained 470 (470名) (470 people) talents", "trained 470 (470名) talents"),
    ("CNY 60,000 (6万元) (6 million yuan) in funding", "CNY 60,000 (6万元) in funding"),
    # a bracket that is not after an original, or holds no figure, stays
    ("in 2023 (see 2022) and CNY 2,000 (2000元) (monthly)", "in 2023 (see 2022) and CNY 2,000 (2000元) (monthly)"),
])
def test_drop_echoes_removes_a_models_english_restatement_of_an_original(text, expected):
    assert drop_echoes(text) == expected


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


def test_lead_names_no_figure_when_none_is_asked():
    lead = english_lead("对博士每月补贴2000元[1]。", [cit(1)], max_figures=0)
    assert "2000" not in lead and "the quoted Chinese text below answers this [1]" in lead


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


# ------------------------------------------------------------------ figures of an English LLM answer
from rag.english import english_figures, render_originals  # noqa: E402

P_MONEY = "营口市\n对来营口企业工作的博士，每月发放2000元生活补贴。"
P_BIG = "重庆市\n力争三年内新增小微企业贷款1000亿元，全市民营经济增加值3239.00亿元。"
P_COUNT = "郑州市\n累计培育国家级专精特新“小巨人”企业109家，省级920家。"


def test_english_figures_skip_the_chinese_originals_and_digits_inside_chinese():
    figs = english_figures("CNY 2,000 per month (每月2000元), 20 million yuan, 1.5 billion, 15% (the numbers rule's), 第3批")
    assert [(f.text, f.value) for f in figs] == [("2,000", 2000), ("20 million", 20_000_000), ("1.5 billion", 1_500_000_000)]


def test_a_money_figure_is_rendered_from_the_passage_with_its_original():
    text, done = render_originals("Yingkou pays doctoral graduates 2000 yuan per month.[1]", [P_MONEY])
    assert text == "Yingkou pays doctoral graduates CNY 2,000 (2000元) per month.[1]"
    assert [d.kind for d in done] == ["original"]


def test_a_count_keeps_the_models_words_and_gets_the_original():
    text, _ = render_originals("Zhengzhou has cultivated 109 national-level little giants.[1]", [P_COUNT])
    assert text == "Zhengzhou has cultivated 109 (109家) national-level little giants.[1]"


def test_yi_read_as_billion_is_rescaled_from_the_passage_and_marked():
    text, done = render_originals("The value added reached 3239.00 billion yuan.[1]", [P_BIG])
    assert "CNY 323.9 billion (3239.00亿元)" in text and "3239.00 billion yuan" not in text
    assert [(d.before, d.kind) for d in done] == [("3239.00 billion yuan", "rescaled")]


def test_a_right_scale_needs_no_rescaling():
    text, done = render_originals("Chongqing aims to add 100 billion yuan in new loans.[1]", [P_BIG])
    assert text == "Chongqing aims to add CNY 100 billion (1000亿元) in new loans.[1]"
    assert done[0].kind == "original"


def test_a_figure_no_cited_passage_states_is_left_for_the_gate():
    for answer in ("Yingkou pays 2500 yuan per month.[1]", "Yingkou pays 2000 yuan per month.[2]", "Yingkou pays 2000 yuan per month."):
        assert render_originals(answer, [P_MONEY]) == (answer, [])  # wrong value / marker names no passage / no marker


def test_originals_already_there_years_and_percentages_are_left_alone():
    for answer in ("Yingkou pays CNY 2,000 per month (每月2000元).[1]", "In 2024 the share was 15%.[1]"):
        assert render_originals(answer, [P_MONEY + "2024年占比15%。"]) == (answer, [])


def test_a_rescaling_that_could_mean_two_figures_is_not_guessed():
    two = "甲市\n发放贷款12亿元，另有担保12万元。"
    assert render_originals("It lent 12 billion yuan.[1]", [two])[1] == []


def test_rendered_answers_pass_the_gate_rules_they_failed():
    from rag.gate import GateInput, check

    for answer, passage in (("The value added reached 3239.00 billion yuan.[1]", P_BIG), ("Zhengzhou has cultivated 109 little giants.[1]", P_COUNT)):
        before = check(GateInput(text=answer, passages=[passage], language="en"), ["english_numbers", "originals"])
        after = check(GateInput(text=render_originals(answer, [passage])[0], passages=[passage], language="en"), ["english_numbers", "originals"])
        assert not before.passed and after.passed, (answer, after.reason)


@pytest.mark.parametrize("prose, year_or_date", [
    ("In 2024 the share rose.", True), ("As of March 2024, it had", True), ("on 2024.03.01 it", True),
    ("It pays 2000 yuan.", False), ("CNY 2000 per month", False), ("It reached 3239.00 billion yuan.", False),
    ("It cultivated 2000 firms.", False),
])
def test_years_and_dates_need_no_original(prose, year_or_date):
    from rag.english import needs_original

    f = english_figures(prose)[0]
    assert needs_original(prose, f) is (not year_or_date)


def test_an_english_date_gets_the_passages_date_beside_it():
    passage = "广州市\n6月7日，我局与洪代表电话沟通。条例于2020年7月2日起施行。"
    text, done = render_originals("On June 7, the bureau phoned the deputy.[1] It took effect on July 2, 2020.[1]", [passage])
    assert text == "On June 7 (6月7日), the bureau phoned the deputy.[1] It took effect on July 2, 2020 (2020年7月2日).[1]"
    assert render_originals("On June 8, the bureau phoned.[1]", [passage]) == ("On June 8, the bureau phoned.[1]", [])


def test_figures_inside_the_brackets_are_originals_not_figures_to_render():
    from rag.english import needs_original

    prose = "It took effect on July 2, 2020 (2020-07-02) and covers 30 (30个) matters."
    assert [f.text for f in english_figures(prose) if needs_original(prose, f)] == ["30"]


def test_states_figures_of_reads_a_chinese_item_by_value_in_english():
    """rag eval's must_include_values: an English answer states 2016年 as 2016 and 500个产品 as 500 (500个) products;
    a wrong value, a word without a figure, or a Chinese answer does not count (Chinese is compared as written)."""
    from rag.english import states_figures_of as states

    a = "The platform showcased 333 (333家) enterprises and 500 (500个) products in the column.[1]"
    assert states("333家", a) and states("500个产品", a) and not states("600个产品", a)
    b = "In 2016, Shanghai's finance bureau and the banking regulator further adjusted the policies.[1]"
    assert states("2016年", b) and not states("2017年", b)
    c = "On April 10, 2020, the Shanghai Regulations on Optimizing the Business Environment took effect.[1]"
    assert states("2020年4月10日", c) and not states("2020年7月2日", c) and not states("4月11日", c)
    d = "Shenyang added 719 (719户) first-loan households and CNY 1.033 billion (10.33亿元) of credit.[1]"
    assert states("10.33亿元", d) and not states("1033万元", d)
    assert not states("首贷户", d)  # no figure: only the words as written count
    assert not states("10.33亿元", "沈阳市拉动信贷投放10.33亿元。[1]")  # not English


def test_place_name_below_the_gazetteer_in_pinyin_with_its_level():
    from rag.english import place_name

    assert place_name("沈阳市") == "Shenyang (沈阳市)"
    assert place_name("秭归县(湖北宜昌)") == "Zigui County (秭归县(湖北宜昌))"
    assert place_name("天津市南开区") == "Nankai District (天津市南开区)"
    assert place_name("宜都市") == "Yidu (宜都市)"  # the gazetteer’s spelling, corrected (was Yidou)
    assert place_name("全国") == "全国"  # no level: left in Chinese


def test_traditional_figures_are_read_as_simplified():
    (m,) = find_numbers("用好用活1億元中小企業應急周轉金")
    assert (m.value, m.unit) == (Decimal(100_000_000), "元")
    (m,) = find_numbers("縣級財政給予400萬元的一次性獎勵補助")
    assert (m.value, m.unit) == (Decimal(4_000_000), "元")
    assert [(x.value, x.unit) for x in find_numbers("新建30個項目,兩億元")] == [(Decimal(30), "个"), (Decimal(200_000_000), "元")]
    assert figure(find_numbers("1億元")[0], "1億元") == "CNY 100 million (1億元)"


def test_english_lead_names_document_numbers_not_their_digits():
    from rag.english import english_lead
    from rag.types import Citation

    c = [Citation(1, "g", "广州市", "", "", "", 1.0)]
    lead = english_lead("《关于促进科技、金融与产业融合发展的实施意见》(穗府办〔2015〕26号)[1]", c)
    assert "document No. 穗府办〔2015〕26号" in lead and "26 (" not in lead, lead
    assert "document No. 长银发2021〔45号〕" in english_lead("印发通知(长银发2021〔45号〕)[1]", c)
    both = english_lead("印发127项《清单》(政网办〔2022〕15号),压减32%[1]", c)
    assert "document No. 政网办〔2022〕15号" in both and "127 items (127项)" in both and "32% (32%)" in both, both


@pytest.mark.parametrize("chinese, english, ok", [
    ("“小巨人”", "the little giant firms", True),
    ("“专精特新”", "specialized SMEs", True),
    ("“三库”", "three libraries", False),  # the glossary does not know it: only the Chinese keeps it
    ("“雏鹰—瞪羚—领军”", "Lion-Tiger-Leader", False),  # translated, but not as the glossary does
    ("“雏鹰—瞪羚—领军”", "eaglet, gazelle and leader", True),
    ("“创新性中小企业—专精特新企业—国家小巨人企业—单项冠军企业”", "innovative SMEs, specialized firms, little giants and single champions", True),
])
def test_glossed_names(chinese, english, ok):
    from rag.textproc import glossed

    assert glossed(chinese, english) is ok
