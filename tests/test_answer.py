"""Stage 6a (rag.answer) and the question analysis it relies on (rag.textproc, rag.retriever.analyze):
paraphrases through the thesaurus, Chinese numerals, quoted names, years/months, units, named concepts,
whole sections. Real index of all 25 replies, real embedder; the questions are not from the gold sets."""
from __future__ import annotations

import re

import pytest

from rag.textproc import cn_numbers_to_digits, equivalents, find_synonyms, quoted_phrases, synonym_groups


# ------------------------------------------------------------------ textproc (no index)
@pytest.mark.parametrize(
    "text, digits",
    [("百亿元", "100亿元"), ("两万人", "2万人"), ("十五家", "15家"), ("三千万元", "3000万元"), ("一次性", "一次性"), ("第一批", "第一批")],
)
def test_chinese_numerals_become_digits(text, digits):
    assert cn_numbers_to_digits(text) == digits


def test_thesaurus_maps_everyday_words_to_the_replies_wording():
    groups = synonym_groups()
    assert len(groups) > 500
    assert "首次" in equivalents("头一回") and "获得贷款" in equivalents("借到钱")
    assert equivalents("百亿元")[-1] == "100亿元"
    assert equivalents("不在词表里的词") == ("不在词表里的词",)
    found = dict(find_synonyms("沈阳有多少家小微企业是头一回从银行借到钱的?"))
    assert "头一回" in found and "借到钱" in found
    # every group's first item is the documents' own wording (the thesaurus maps towards the replies)
    for w, g in list(groups.items())[:50]:
        assert w in g


def test_quoted_names():
    assert quoted_phrases("哪些城市设立了“企业家日”?") == ["企业家日"]
    assert quoted_phrases('What is a "little giant"?') == []  # English quotes are not required verbatim


# ------------------------------------------------------------------ question analysis
def test_paraphrase_terms_carry_the_documents_wording(eval_pipeline):
    q = eval_pipeline.retriever.analyze("沈阳那些头一回从银行借到钱的小企业一共有几家?")
    assert q.cities == ["沈阳市"]
    assert "头一回" in q.terms and "一回" not in q.terms  # one term, not jieba's pieces
    assert "首次" in q.equivalents("头一回")
    assert "首次" in q.official and "首次" in q.lexical_text and "首次" not in q.search_text  # BM25 only
    assert "那些" not in q.terms  # filler words are no key terms


def test_english_place_names_filter_and_unknown_ones_are_refused(eval_pipeline):
    q = eval_pipeline.retriever.analyze("How many first-time borrowers did Shenyang add?")
    assert q.cities == ["沈阳市"]
    a = eval_pipeline.ask("How much interest subsidy does Chengdu give to first-time borrowers?")
    assert a.abstained and "成都市" in a.answer


# ------------------------------------------------------------------ answers
@pytest.mark.parametrize(
    "question, expected",
    [
        ("沈阳第一次从银行拿到贷款的小微企业累计增加了多少户?", "719户"),  # 第一次/拿到贷款 -> 首次/获得贷款
        ("郑州一家企业年营收头一回突破百亿元,奖励多少?", "200万元"),  # 营收, 头一回, 百亿 -> 100亿
        ("上海2023年发布的优化营商环境工作方案是第几版?", "6.0版"),  # 今年 in a reply dated 2023
        ("天津线上银税互动服务平台为多少家企业授信?授信金额是多少?", "34.41亿元"),  # the second part's figure
    ],
)
def test_answers_quote_the_figure(eval_pipeline, question, expected):
    a = eval_pipeline.ask(question)
    assert not a.abstained, a.answer
    assert expected in a.answer, a.answer
    assert a.citations and all(f"[{c.n}]" in a.answer for c in a.citations)


@pytest.mark.parametrize(
    "question, why",
    [
        ("营口“金小二”平台今年5月新增放款多少?", "the reply gives February's figure, not May's"),
        ("广州对新认定的创新型中小企业给予多少奖励?", "the award is for 小巨人, not 创新型中小企业"),
        ("郑州人才公寓的月租金标准是多少?", "17.2万套 is a number of flats, not money"),
        ("临湘“助保贷”平台累计发放了多少笔担保贷款?", "no figure in 笔"),
        ("营口市对“人才绿卡”持有人给予多少补贴?", "no reply names “人才绿卡”"),
        ("截至2023年底,辽宁全省规上工业企业实际有多少家?", "the 2023 in 《…(2023—2025年)》 names a plan"),
        ("广州越秀区对新认定的专精特新“小巨人”企业奖励多少钱?", "广州's award is the city's, not 越秀区's"),
        ("湖南省产业链“一链一行”第三批主办行名录有多少家银行入选?", "the reply lists the 第一批"),
        ("沈阳对科技创新券每家企业最高补贴多少钱?", "400万元 is the whole budget, not a maximum per enterprise"),
    ],
)
def test_abstains_when_the_passage_does_not_answer(eval_pipeline, question, why):
    a = eval_pipeline.ask(question)
    assert a.abstained, f"{why}: {a.answer}"


def test_common_words_in_qu_are_no_districts(eval_pipeline):
    a = eval_pipeline.ask("辽宁在哪个APP设立了“免申即享”专区?")  # 专区 is no district
    assert not a.abstained and "辽事通" in a.answer, a.answer


def test_whole_section_question_gets_the_section_first_and_whole(eval_pipeline):
    q = "辽宁在切实加强要素保障方面采取了哪些措施?"
    res = eval_pipeline.retriever.search(q, k=5)
    top = [h.chunk for h in res.hits]
    in_section = [c for c in top if c.doc_id == "liaoning" and any("切实加强要素保障" in p for p in c.section_path)]
    assert in_section and top[: len(in_section)] == in_section  # the section's passages come first
    a = eval_pipeline.ask(q)
    for item in ("标准地", "先租后让"):  # items 二 and 三 of the section (the second one deep in its paragraph)
        assert item in a.answer, a.answer


def test_comparative_answer_names_only_documents_with_the_quoted_name(eval_pipeline):
    a = eval_pipeline.ask("哪些城市设立或举办了“企业家日”?")
    lines = a.answer.splitlines()
    assert {ln.split(":")[0][:2] for ln in lines} == {"营口", "郑州"}, a.answer
    assert "11月1日" in a.answer  # the item title is followed by what it says


def test_every_quote_is_word_for_word_from_its_passage(eval_pipeline):
    """Across every question of every gold set: each cited sentence is a verbatim piece of its passage, and each
    marker in the answer has its citation (the extractive answerer never rephrases)."""
    import json
    import re

    from conftest import REPO
    from rag.textproc import normalise

    questions = [json.loads(ln)["question"] for f in sorted((REPO / "data" / "gold").glob("*.jsonl")) for ln in f.open(encoding="utf-8") if ln.strip()]
    assert len(questions) > 250
    for question in questions:
        a = eval_pipeline.ask(question)
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", a.answer)}
        assert markers == {c.n for c in a.citations}, (question, a.answer)
        for c in a.citations:
            for piece in c.quote.split("\n"):
                assert normalise(piece) in normalise(c.text), (question, piece)


def test_no_amount_question_is_answered_with_only_a_date(eval_pipeline):
    """Across every gold question: when a part asks an amount (not a date), every sentence quoted for the
    answer states a figure that is not a date (2021年3月22日 is no GDP)."""
    import json
    import re

    from conftest import REPO
    from rag.checks import _DATE, NUMBER

    questions = [json.loads(ln)["question"] for f in sorted((REPO / "data" / "gold").glob("*.jsonl")) for ln in f.open(encoding="utf-8") if ln.strip()]
    questions.append("天津市2021年的GDP是多少?")
    checked = 0
    for question in questions:
        a = eval_pipeline.ask(question)
        if a.abstained or a.plan.kind != "fact" or len(a.plan.parts) != 1:
            continue
        part = a.plan.parts[0]
        if not part.asks_number or part.unit == "date":
            continue
        checked += 1
        for line in re.split(r"\[\d+\]", a.answer):
            if line.strip():
                assert NUMBER.search(_DATE.sub(" ", line)), (question, a.answer)
    assert checked > 100


def test_meta_question_answered_with_a_citation(eval_pipeline):
    a = eval_pipeline.ask("辽宁省的答复是什么时候发布的?")
    assert not a.abstained and a.citations and a.citations[0].doc_id == "liaoning", a.answer
    assert re.search(r"20\d\d", a.answer)


def test_ask_json_shows_plan_and_why(eval_pipeline):
    d = eval_pipeline.ask("营口市对博士每月补贴多少?").to_dict()
    assert d["plan"]["kind"] == "fact" and d["plan"]["parts"][0]["asks_number"]
    assert d["why"] and d["why"][0]["decision"] == "answer" and "unit" in d["why"][0]["passed"]
    r = eval_pipeline.ask("营口市对引进的博士研究生提供多少购房补贴?").to_dict()
    assert r["abstained"] and r["why"][0]["decision"] == "refuse" and r["why"][0]["failed"]


def test_a_sentence_restating_the_title_goes_on_to_what_is_asked_of_it():
    from rag.answer import _asked_outside_titles
    from rag.plan import analyze

    class Lex:
        def cities(self):
            return ["云南省"]

    part = analyze("修订后的《云南省中小企业促进条例》在哪些方面有突破?", Lex()).parts[0]
    assert "突破" in _asked_outside_titles(part) and "条例" not in _asked_outside_titles(part)
    assert _asked_outside_titles(analyze("云南省有哪些突破?", Lex()).parts[0]) == []  # no title: nothing to go on for


def test_a_sentence_announcing_measures_goes_on_to_name_them():
    from rag.answer import _announces_list

    assert _announces_list("今年,为应对疫情影响,本市出台了一系列减轻企业社保负担的措施,相关政策对中小企业进行了倾斜。")
    assert not _announces_list("出台了一系列措施,包括减税、降费、贴息。")  # names them itself
    assert not _announces_list("沈阳市累计增加首贷户719户。")


def test_a_clause_naming_several_things():
    from rag.checks import names_several

    assert names_several("我省密集出台了《若干政策措施》《若干措施》等一系列政策措施")
    assert names_several("支持人工智能、生物医药、新能源等产业")
    assert not names_several("近年来,为了进一步助力民营企业纾解困难")
