"""rag.plan: the question plan, computed once (no index, no embedder)."""
from __future__ import annotations

import pytest

from rag.plan import analyze, meta_intents
from rag.textproc import normalise, to_simplified, tokenize


class _Lex:
    def cities(self):
        return ["营口市", "沈阳市", "天津市", "辽宁省", "秭归县"]


def test_fact_plan_with_unit_and_qualifier():
    p = analyze("营口市对博士每月最高补贴多少钱?", _Lex())
    assert p.kind == "fact" and p.language == "zh"
    assert p.cities == ["营口市"]
    part = p.parts[0]
    assert part.asks_number and part.unit == "money"
    assert set(part.qualifiers) == {"maximum", "per_unit"}
    assert "营口" not in " ".join(p.terms)  # the place is a filter, not a key term


def test_two_parts_and_their_terms():
    p = analyze("沈阳市服务平台为多少家企业授信?授信金额是多少?", _Lex())
    assert len(p.parts) == 2
    assert p.parts[0].unit == "count:家户" and p.parts[1].unit == "money"
    assert p.whole is not None and p.whole.text == p.text


def test_kinds():
    lex = _Lex()
    assert analyze("哪些城市对首贷户给予贴息?", lex).kind == "comparative"
    assert analyze("沈阳在拓展融资渠道方面做了哪些工作?", lex).kind == "section"
    assert analyze("辽宁省的答复是什么时候发布的?", lex).kind == "meta"
    assert analyze("这份答复是哪位代表提出的建议?", lex).meta == ["addressee"]


def test_meta_intents_are_not_other_documents():
    assert meta_intents("《中小企业促进办法》的文号是什么?") == []
    assert "number" in meta_intents("《关于支持中小企业发展的建议》的编号是多少?")


def test_dates_ordinals_districts_quotes():
    p = analyze("2023年第二批“专精特新”企业中黄埔区有多少家?3月新增多少家?", _Lex())
    a = p.parts[0]
    assert a.years == ["2023"] and a.ordinals == ["第二批"] and a.districts == ["黄埔"] and a.quoted == ["专精特新"]
    assert p.parts[1].months == [3]


def test_year_inside_a_title_is_no_year_asked():
    p = analyze("《上海市2013-2015年促进办法》规定的补贴上限是多少?", _Lex())
    assert p.parts[0].years == []


def test_unknown_place_and_english():
    p = analyze("拉萨市对首贷户贴息多少?", _Lex())
    assert p.unknown_places == ["拉萨市"] and not p.cities
    e = analyze("How much monthly living allowance does Yingkou give to doctoral graduates?", _Lex())
    assert e.language == "en" and e.cities == ["营口市"] and e.expansion


def test_traditional_question_reads_as_simplified():
    assert to_simplified("對中小企業的貸款貼息") == "对中小企业的贷款贴息"
    p = analyze("秭歸縣對中小企業的貸款貼息是多少?", _Lex())
    assert p.cities == ["秭归县"]
    assert any("贴息" in t for t in p.terms) and not any("秭归" in t for t in p.terms)
    assert tokenize("專精特新企業") == tokenize("专精特新企业")
    assert normalise("貸款 貼息") == "贷款贴息"


def test_plan_is_json():
    import json

    d = analyze("营口市对博士每月补贴多少?", _Lex()).to_dict()
    json.dumps(d, ensure_ascii=False)
    assert d["parts"][0]["unit"] == "money" or d["parts"][0]["asks_number"]


def test_national_replies_are_no_city():
    from rag.places import normalise_place

    assert normalise_place("全国") == "全国"
    assert normalise_place("沈阳") == "沈阳市"


# ------------------------------------------------------------------ places below the gazetteer, in English
from rag.places import english_names  # noqa: E402
from rag.plan import place_filter  # noqa: E402


def test_english_names_of_places_below_the_gazetteer():
    assert english_names("沈阳市") == ("Shenyang",)  # the gazetteer's own name
    assert english_names("秭归县(湖北宜昌)") == ("Zigui",)
    assert english_names("威海市环翠区") == ("Huancui",)  # the district's own name, after its city
    assert english_names("丽水市莲都区") == ("Liandu", "Liandou")  # 都 read as in Chengdu first, then its other reading
    assert english_names("岳阳县") == ("Yueyang",)  # one name, not 岳阳 + 县


def test_english_question_filters_by_a_county_or_district():
    idx = {"秭归县", "天津市", "天津市南开区", "丽水市莲都区", "沈阳市"}
    assert place_filter("How large is the emergency revolving fund that Zigui County uses?", idx)[0] == ["秭归县"]
    assert place_filter("How much did the output of Liandu District (Lishui) rise?", idx)[0] == ["丽水市莲都区"]
    assert "天津市南开区" in place_filter("What tiers does Tianjin's Nankai District use?", idx)[0]
    assert place_filter("What did Nankai University publish?", idx)[0] == []  # an institution, not the district
    assert place_filter("How many zigui firms?", idx)[0] == []  # capitalised whole words only


def test_a_district_named_without_its_city_is_a_filter_not_a_topic_word():
    class Lex:
        def cities(self):
            return ["丹东市元宝区", "长春市二道区", "沈阳市"]

        def known(self, w):
            return True

    plan = analyze("元宝区为什么要专门给小企业盖统一规格的厂房?", Lex())
    assert plan.cities == ["丹东市元宝区"] and "元宝区" not in plan.terms and "元宝" not in plan.terms
    # the question words of a list question are no key terms
    plan = analyze("长春市二道区工信局下一步打算从哪几个方面支持区内国资国企发展?", Lex())
    assert plan.cities == ["长春市二道区"] and not {"几个", "哪几个", "一步"} & set(plan.terms) and "国资" in plan.terms


def test_places_inside_a_quoted_name_stay_in_the_topic():
    class Lex:
        def cities(self):
            return ["沈阳市"]

        def known(self, w):
            return True

    plan = analyze("沈阳的“@沈阳营商”小程序有多少实名注册用户?", Lex())
    assert plan.cities == ["沈阳市"] and "沈阳" in plan.terms  # the name's 沈阳, not the filter's
    assert "沈阳" not in analyze("沈阳的小程序有多少实名注册用户?", Lex()).terms


def test_a_concessive_clause_is_no_part_and_names_no_district():
    from rag.plan import is_district, question_parts

    q = "在郑州,不管企业在哪个区,能在市内任意地方办理的政务事项现在有多少个?"
    assert question_parts(q) == [q]
    assert question_parts("沈阳上半年发布了多少融资需求?累计放款多少?") == ["沈阳上半年发布了多少融资需求", "累计放款多少"]
    assert not is_district("哪个") and not is_district("每个") and is_district("黄埔")
    assert all(not p.districts for p in analyze(q, _Lex()).parts)


def test_district_starts_a_word_of_its_own():
    from rag.plan import districts_named

    assert districts_named("长春二道区的国有企业有没有从区里拿到过补贴") == ["二道"]  # not 有从 (of 有没有从区里)
    assert districts_named("海珠区、黄埔区、南沙区") == ["海珠", "黄埔", "南沙"]


def test_everyday_short_name_after_its_province():
    from rag.plan import place_filter

    assert place_filter("安徽明光把招商引资摆在什么位置?", {"明光市", "沈阳市"}) == (["明光市"], [])
    assert place_filter("明光的做法", {"明光市"})[0] == []  # 明光 alone is an everyday word


@pytest.mark.parametrize("question,head", [
    ("2019年山东民营企业的出口额是多少亿元?", ("出口额",)),  # 亿元 is the unit, the head is before 是多少
    ("营口市对博士每月补贴多少?", ("博士",)),  # 每月 and 补贴 say nothing of what is paid for
    ("注册资本是多少", ("注册资本",)),
])
def test_head_before_a_money_unit(question, head):
    from rag.plan import head_terms

    assert head_terms(question) == head


def test_period_flow_name_and_english_head_in_the_plan():
    from rag.plan import english_head, period_asked

    assert period_asked("2024年全年广州软件营收是多少?") == "全年"
    assert period_asked("What was the revenue for the full year 2024?") == "全年"
    assert period_asked("第一季度新增贷款多少?") == "一季度"
    assert english_head("How much registered capital does the Fund have?") == "registered capital"
    assert english_head("How many emerging and advantageous industrial chains did Hunan build on?") == "emerging and advantageous industrial chains"
    assert english_head("How much money did it give?") == ""


def test_document_number_of_another_document_is_a_unit_not_meta():
    from rag.plan import meta_intents
    from rag.textproc import asks_number, unit_kind, unit_pattern

    q = "What is the document number of Guangzhou's measures encouraging overseas talent?"
    assert meta_intents(q) == [] and asks_number(q) and unit_kind(q) == "docno"
    assert meta_intents("What is the document number of the reply?") == ["doc_number"]
    assert unit_kind("《广州市人才绿卡制度》的文号是什么?") == "docno"
    need = unit_pattern("docno")
    assert need.search("《办法》(穗府办〔2016〕9号)") and need.search("长银发2021〔45号〕")
    assert not need.search("2016年出台的《十条工作措施》")


@pytest.mark.parametrize("question,zh", [
    ("How many business entities did Shenyang have?", "市场主体"),  # entity -> entities
    ("Which SMEs were surveyed?", "调研"),  # survey -> surveyed
    ("How many talents did Chongqing bring in?", "引进"),
    ("introducing new firms", "引进"),  # introduce -> introducing
])
def test_glossary_matches_plurals_and_verb_forms(question, zh):
    from rag.textproc import expand_english

    assert zh in expand_english(question).split()


def test_english_count_of_smes_and_of_other_things():
    from rag.textproc import unit_kind

    assert unit_kind("How many SMEs did Henan survey?") == "count:家户"
    assert unit_kind("How many major science and technology special projects has Shenyang organized?") == "count:项"


@pytest.mark.parametrize("question,kind", [
    ("你是谁?你用的是什么模型?", "assistant"),
    ("Who are you?", "assistant"),
    ("营口市对博士每月补贴多少?", "fact"),
    ("你们营口对博士每月补贴多少?", "fact"),  # a place named: a question about the replies
])
def test_questions_about_the_tool_itself(question, kind):
    class Lex:
        def cities(self):
            return ["营口市"]

    assert analyze(question, Lex()).kind == kind


def test_a_year_alone_grounds_no_answer():
    from rag.plan import grounding_terms

    assert grounding_terms(["2022"]) == [] and grounding_terms(["2022", "年", "贴息"]) == ["贴息"]


@pytest.mark.parametrize("question,kind", [
    ("营口和沈阳分别有多少家专精特新企业?", "comparative"),
    ("各地的创新型中小企业数量分别是多少?", "comparative"),
    ("沈阳对单项冠军企业和产品分别给予多少奖励?", "fact"),  # several figures of the one place named
])
def test_several_figures_of_one_place_are_a_fact_question(question, kind):
    class Lex:
        def cities(self):
            return ["营口市", "沈阳市"]

    assert analyze(question, Lex()).kind == kind


def test_a_thesaurus_form_of_a_field_name_is_a_concept():
    class Lex:
        def cities(self):
            return ["秭归县"]

    part = analyze("秭归县对在北京证券交易所上市的企业奖励多少?", Lex()).parts[0]
    assert "北京证券交易所" in part.concepts  # 北交所's full name: a 沪深交易所 passage does not answer it


def test_place_inside_an_institution_name_is_no_filter():
    from rag.places import find_places

    assert find_places("在北京证券交易所上市") == [] and find_places("联合长江日报推出") == []
    assert find_places("北京的企业")[0][0] == "北京市"


def test_issued_which_documents_is_no_comparison_and_asks_a_list():
    class Lex:
        def cities(self):
            return ["沈阳市", "营口市"]

    plan = analyze("2023年沈阳为发展壮大民营经济制定出台了哪些文件?", Lex())
    assert plan.kind != "comparative" and plan.parts[0].asks_list
    assert analyze("哪些文件提到了首贷户?", Lex()).kind == "comparative"  # which replies
    assert not analyze("营口对博士每月补贴多少?", Lex()).parts[0].asks_list


def test_frequency_and_the_things_behind_jige():
    from rag.textproc import asks_number, unit_kind, unit_pattern

    assert unit_kind("沈阳多长时间盘点一次政策落实情况?") == "frequency" and unit_kind("审批需要多长时间?") == "duration"
    assert unit_pattern("frequency").search("每季度定期调度落实情况") and not unit_pattern("frequency").search("用时1.4个小时")
    assert asks_number("How often does Shenyang check the policies?")
    assert not asks_number("广州民营企业最头疼的几个老问题是什么?")  # the problems, not how many
    assert asks_number("营口有几家银行?")


@pytest.mark.parametrize("question,heads,near", [
    ("各报告了多少家“小巨人”企业?", ("小巨人企业",), ("报告",)),  # the quotation marks are inside the thing asked
    ("占全省进出口总值的比重提升到了多少?", (), ("比重", "提升")),  # a verb done: nothing to check, a figure next to it scores
    ("发放了多少购房补贴?", ("购房补贴",), ("发放",)),
    ("注册资本是多少?", ("注册资本",), ()),
])
def test_heads_to_check_and_words_a_figure_is_near(question, heads, near):
    from rag.plan import head_terms, near_terms

    assert head_terms(question) == heads
    assert near_terms(question) == near


def test_these_few_years_asks_no_number():
    from rag.textproc import asks_number

    assert not asks_number("这几年上海改善民营企业经营环境主要从哪几处用力?")
    assert asks_number("近三年新增了几家上市公司?")


def test_a_later_part_asks_of_the_same_part_of_the_year():
    p = analyze("2020年上半年山东民营企业进出口额是多少?占全省进出口总值的比重提升到了多少?", _Lex())
    assert [x.period for x in p.parts] == ["上半年", "上半年"]


def test_counties_named_apart_make_a_comparison():
    from rag.plan import _counties_named_apart

    assert _counties_named_apart("岳阳市和下辖的岳阳县在答复中各报告了多少家", ["岳阳市", "岳阳县"]) == ["岳阳县"]
    assert _counties_named_apart("湖南岳阳县和临湘市分别依托什么平台", ["湖南省", "岳阳市", "临湘市", "岳阳县"]) == []  # after its province
    assert _counties_named_apart("威海市环翠区银企对接会", ["威海市环翠区"]) == []  # the city's district: one place


def test_single_character_words_of_a_question_are_no_key_terms():
    p = analyze("Python里怎么安装numpy?", _Lex())
    assert "里" not in p.terms  # 里 is in 公里 of every other passage


@pytest.mark.parametrize("question,event", [
    ("岳阳县中小企业融资担保有限公司是哪一年成立的?", "成立"),
    ("从哪一年开始实施科技小巨人领军企业培育工程?", "实施"),
    ("是哪一年正式获批国家创新型城市的?", "获批"),
    ("该平台从哪一年开始运行?", "运行"),
    ("营口对博士每月补贴多少?", ""),  # no date asked
])
def test_what_a_date_is_asked_of(question, event):
    assert analyze(question, _Lex()).parts[0].event == event


def test_the_figures_a_question_states_are_read_once_in_the_plan():
    p = analyze("年营业收入超过百亿元的总部企业有多少家?", _Lex()).parts[0]
    assert p.figures == [("100", "亿", "元")] and p.figure_numbers == ["100"] and not p.confirms
    assert analyze("营口市是否对博士每月补贴2500元?", _Lex()).parts[0].confirms
    assert analyze("How many of the 320-plus leading enterprises belong to the chain?", _Lex()).parts[0].figure_numbers == ["320"]


@pytest.mark.parametrize("question, frame, kept", [
    # whom the reply answers, who issued it: they find the reply, no sentence has to say them
    ("上海市发展改革委答复徐兵、陈志奇委员时,对提案建议持什么态度?", {"徐兵", "陈志奇", "委员", "发展改革委"}, {"态度"}),
    ("What overall trend does Wuhan's reply to suggestion JY20250126 say the private economy shows?", {"jy20250126"}, {"民营"}),
    ("营口市对孙建伟代表的建议答复了什么?", set(), {"孙建伟"}),  # nothing else asked: no frame
    ("营口对博士每月补贴多少?", set(), {"博士"}),
])
def test_frame_terms_say_which_reply_not_what_is_asked(question, frame, kept):
    p = analyze(question, _Lex())
    assert frame <= set(p.frame) and not (set(p.frame) & kept), p.frame
    assert set(p.frame) <= set(p.terms)  # still searched for
    for part in p.parts:
        assert not set(part.terms) & set(p.frame)
    assert kept <= {t for part in p.parts for t in part.terms} | set(p.expansion.split())


def test_a_meta_question_keeps_its_frame_terms():
    p = analyze("上海市发展改革委答复徐兵、陈志奇委员的答复日期是哪天?", _Lex())
    assert p.meta and all("徐兵" in part.terms for part in p.parts)


@pytest.mark.parametrize("question, focus", [
    ("郑州重新理权责清单时,那些交给行业协会或中介机构就能办的事是怎么处理的?", "那些交给行业协会或中介机构就能办的事是怎么处理的?"),
    ("在辽宁的开发区拿到工业用地的企业想尽快动工,供地和项目审批能不能同时办?", "供地和项目审批能不能同时办?"),
    ("营口对博士每月补贴多少?", ""),  # one clause
    ("营口对博士补贴多少,对硕士补贴多少?", ""),  # every clause asks
])
def test_the_asking_clause_is_the_focus(question, focus):
    from rag.plan import asking_clauses

    assert asking_clauses(question) == focus
    p = analyze(question, _Lex())
    if focus:  # its terms count once more than the scene's
        terms = p.parts[0].terms
        assert terms.count("中介机构" if "中介" in question else "审批") > terms.count("权责" if "权责" in question else "开发区")


def test_a_sub_word_of_a_question_word_is_no_key_term():
    """能不能 asks; its sub-word 不能 names nothing there, though it does in 哪些企业不能申请."""
    assert "不能" not in analyze("供地和项目审批能不能同时办?", _Lex()).terms
    assert "不能" in analyze("哪些企业不能申请贴息?", _Lex()).terms
    assert "没有" not in analyze("有没有针对首贷户的贴息?", _Lex()).terms


@pytest.mark.parametrize("addressee, names", [
    ("岳朝阳委员", ["岳朝阳"]), ("石宝珍、高庆迁委员", ["石宝珍", "高庆迁"]), ("章文忠委員", ["章文忠"]),
    ("市工商联", []), ("港澳台侨民族和宗教委员会", []), ("XXX委员", []),
])
def test_people_a_reply_answers(addressee, names):
    from rag.places import people_named

    assert people_named(addressee) == names


class _PeopleLex(_Lex):
    def cities(self):
        return ["广州市", "四川省", "营口市"]

    def people(self):
        from rag.places import person_english

        return {person_english(n): n for n in ("岳朝阳", "温政敏")}


def test_an_english_question_names_a_member_in_pinyin():
    """CPPCC member Yue Zhaoyang is 岳朝阳 (searched for, a frame term), not the place 朝阳市; a place with no reply of
    its own written about in the one asked (Yibin in 四川省's) makes no comparison."""
    p = analyze("According to Guangzhou's reply, in which respects does CPPCC member Yue Zhaoyang's proposal help private firms?", _PeopleLex())
    assert "岳朝阳" in p.expansion and p.cities == ["广州市"] and p.kind != "comparative"
    assert p.frame and all(t in "岳朝阳" for t in p.frame)  # the name's words, however jieba cuts it
    p = analyze("In Sichuan's reply to deputy Wen Zhengmin about Yibin's bid to become a pilot city, which form is the deputy asked to fill in?", _PeopleLex())
    assert p.cities == ["四川省"] and p.kind != "comparative" and "温政敏" in p.expansion


def test_a_latin_word_the_replies_use_is_a_key_term():
    class _Known(_Lex):
        def known(self, w):
            return w in {"chatzoc"}

    p = analyze("By how much did ChatZOC raise patient service efficiency according to Guangzhou's reply?", _Known())
    assert "chatzoc" in p.terms and "the" not in p.terms and "efficiency" not in p.terms
