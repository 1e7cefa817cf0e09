"""rag.checks: each named check, table-driven on made-up passages (no index, no embedder)."""
from __future__ import annotations

import pytest

from rag.checks import CHECKS, Candidate, CheckContext, run_checks
from rag.config import AnswerConfig
from rag.plan import analyze
from rag.types import Chunk, Hit


class _Lex:
    def cities(self):
        return ["营口市", "沈阳市", "天津市", "辽宁省"]


def _cand(sentence: str, passage: str | None = None, date: str = "2024-05-20", coverage: float = 1.0, dense: float = 0.0) -> Candidate:
    chunk = Chunk(chunk_id="d#0", doc_id="d", ordinal=0, text=passage or sentence, section_path=["一、"], city="营口市", date=date)
    hit = Hit(chunk=chunk, score=1.0, rank=1, dense=dense)
    import re

    return Candidate(sentence, hit, 1.0, coverage, bool(re.search(r"\d", sentence)), 0)


def _finding(check: str, question: str, sentence: str, passage: str | None = None, **kw):
    plan = analyze(question, _Lex())
    part = plan.parts[0]
    ctx = CheckContext(AnswerConfig(), known=lambda w: True, no_terms=not plan.terms, latin=False)
    return CHECKS[check](part, _cand(sentence, passage, **kw), ctx)


CASES = [
    # check, question, sentence, passage (None = the sentence), passes?
    ("unit", "沈阳市累计增加首贷户多少户?", "累计增加首贷户1200户。", None, True),
    ("unit", "沈阳市累计增加首贷户多少户?", "累计发放首贷资金12亿元。", None, False),
    ("unit", "河南回收了多少份有效问卷?", "对3700多家企业开展调查,涵盖了15个行业。", None, False),  # 份 asked, 个 is another count
    ("unit", "营口对博士每月补贴多少钱?", "博士每月补贴2000元。", None, True),
    ("unit", "营口对博士每月补贴多少钱?", "博士每月补贴按规定执行。", None, False),
    ("unit", "贷款贴息比例是多少?", "按贷款利息的50%给予贴息。", None, True),
    ("unit", "贷款贴息比例是多少?", "按比例给予贴息。", None, False),
    ("unit", "答复是何时作出的?", "2024年5月20日", None, True),
    ("not_date", "天津市2021年的GDP是多少?", "2021年3月22日", None, False),
    ("not_date", "天津市2021年的GDP是多少?", "2021年全市生产总值15695亿元。", None, True),
    ("not_date", "答复是何时作出的?", "2024年5月20日", None, True),  # a date asked: does not apply
    ("not_date", "营口标识注册量是多少?", "注册企业数和标识注册量居全省第1位。", None, False),  # a rank is no amount
    ("not_date", "营口标识注册量排全省第几?", "注册企业数和标识注册量居全省第1位。", None, True),  # a rank asked
    ("not_date", "营口标识注册量是多少?", "标识注册量达到1200万个,居全省第1位。", None, True),
    ("not_date", "营口标识注册量是多少?", "已建成5个二级节点,注册企业数和标识注册量居全省第1位。", None, False),  # its clause: a rank
    ("not_date", "营口标识注册量是多少?", "标识注册量1200万个,解析量居全省第2位。", None, True),
    ("not_date", "营口建成了几个二级节点?", "已建成上线5个二级节点,上线节点数居全省第2位。", None, True),
    ("unit", "南开区培育了多少家航母级企业?", "以培育一批“航母级”创新型领军企业为目标。", None, False),  # 一批: no count
    ("unit", "第一批名录有多少家企业?", "第一批名录共30家企业。", None, True),
    ("year", "2023年新增专精特新企业多少家?", "2023年新增专精特新企业120家。", None, True),
    ("year", "2023年新增专精特新企业多少家?", "2022年新增专精特新企业100家。", None, False),
    ("year", "2024年新增专精特新企业多少家?", "今年新增专精特新企业120家。", None, True),  # reply dated 2024
    ("year", "2023年新增专精特新企业多少家?", "去年新增专精特新企业90家。", None, True),
    ("month", "今年3月新增贷款多少?", "3月新增贷款5亿元。", None, True),
    ("month", "今年3月新增贷款多少?", "1月新增贷款5亿元。", None, False),
    ("ordinal", "第二批名录有多少家企业?", "第一批名录共30家企业。", None, False),
    ("ordinal", "第二批名录有多少家企业?", "第二批名录共45家企业。", None, True),
    ("district", "黄埔区的配套奖励是多少?", "市级奖励50万元。", None, False),
    ("district", "黄埔区的配套奖励是多少?", "黄埔区给予配套奖励50万元。", None, True),
    ("level", "广州对新认定的市级专精特新企业奖励多少?", "对新认定国家级、省级专精特新“小巨人”企业分别一次性奖励100万元、20万元。", None, False),
    ("level", "广州对新认定的省级专精特新企业奖励多少?", "对新认定国家级、省级专精特新“小巨人”企业分别一次性奖励100万元、20万元。", None, True),
    ("level", "广州对新认定的市级专精特新企业奖励多少?", "对新认定的专精特新企业给予奖励10万元。", None, True),  # no level named: left to others
    ("kind", "对新上市企业有什么奖励?", "给予一次性补助200万元。", None, False),
    ("kind", "对新上市企业有什么奖励?", "给予一次性奖励200万元。", None, True),
    ("qualifier", "每家企业最高补贴多少?", "安排补贴资金3000万元。", None, False),
    ("qualifier", "每家企业最高补贴多少?", "每家企业补贴最高不超过50万元。", None, True),
    ("quoted", "“金小二”服务了多少家企业?", "已服务企业300家。", "“三贷中心”已服务企业300家。", False),
    ("quoted", "“金小二”服务了多少家企业?", "“金小二”已服务企业300家。", None, True),
    ("head", "发放了多少购房补贴?", "发放人才奖励300万元。", None, False),
    ("head", "发放了多少购房补贴?", "发放购房补贴300万元。", None, True),
    ("concept", "认定创新型中小企业多少家?", "认定专精特新中小企业200家。", None, False),
    ("concept", "认定创新型中小企业多少家?", "认定创新型中小企业500家。", None, True),
    ("year", "2024年新增专精特新企业多少家?", "2023年新增专精特新企业120家。", "2023年新增专精特新企业120家。2024年继续推进。", False),
    ("year", "2023年新增专精特新企业多少家?", "2021—2025年累计新增专精特新企业500家。", None, True),  # a range covers it
    ("year", "2023年补贴标准是多少?", "自2021年起,对企业补贴1000元。", "2023年继续执行。自2021年起,对企业补贴1000元。", True),
    ("period", "2024年全年软件业营收是多少?", "2024年1-5月软件业营收1925亿元。", None, False),
    ("period", "2024年全年软件业营收是多少?", "2024年全年软件业营收7000亿元。", None, True),
    ("period", "2024年全年软件业营收是多少?", "2024年软件业营收7000亿元。", None, True),
    ("period", "2024年上半年软件业营收是多少?", "2024年软件业营收7000亿元。", None, False),
    ("period", "今年一季度新增贷款多少?", "1季度新增贷款5亿元。", None, True),
    ("flow", "2024年新增了多少家上市公司?", "截至2024年底,全市上市公司9家。", None, False),
    ("flow", "2024年新增了多少家上市公司?", "2024年新增上市公司2家。", None, True),
    ("flow", "对新增的四上企业每家奖励多少钱?", "对四上企业每家奖励5万元。", None, True),  # 新增的: a kind of firm, no flow asked
    ("name", "获批组建的创新联合体叫什么名字?", "已获批组建省级创新联合体1家,试点组建创新联合体有限公司5家。", None, False),
    ("name", "获批组建的创新联合体叫什么名字?", "获批组建“湖南工程机械创新联合体”。", None, True),
    ("name", "由哪家企业牵头?叫什么?", "由羚锐公司牵头组建。", None, True),
    ("english_head", "How much registered capital does the National Financing Guarantee Fund have?", "提高新增1000万元及以下担保业务规模。", None, False),  # 注册 not in it
    ("english_head", "How many events did Chongqing hold?", "开展系列活动277场。", None, True),  # no Chinese for "events": no check
    ("english_head", "How many SMEs did Henan survey?", "调研中小企业300家。", None, True),
    ("english_head", "How much money did Henan give?", "发放资金300万元。", None, True),  # names nothing specific
    ("acknowledgement", "沈阳在支持小微企业数字化转型方面做了哪些工作?", "您提出的《关于支持小微企业数字化转型的提案》收悉,现答复如下:", None, False),
    ("acknowledgement", "沈阳在支持小微企业数字化转型方面做了哪些工作?", "您提出的“关于支持小微企业数字化转型的提案”已收悉。", None, False),
    ("acknowledgement", "提案由哪位副主席领办督办?", "您的提案由市政协副主席周保林同志领办督办,经与市科技局、市金融工作办公室等共同研究办理,现答复如下:", None, True),
    ("acknowledgement", "沈阳在支持小微企业数字化转型方面做了哪些工作?", "一是设立数字化转型专项资金2000万元。", None, True),
    ("novel", "云南80.51万户中小微企业中微型企业有多少户?", "全省中小微企业累计达80.51万户,同比增长12.0%,占全部企业数量的90.8%。", None, False),
    ("novel", "云南80.51万户中小微企业中微型企业有多少户?", "其中微型企业62.3万户,占77.4%。", None, True),
    ("acknowledgement", "上海市发展改革委答复徐兵、陈志奇委员时,对提案建议持什么态度?", "徐兵、陈志奇委员:", None, False),
    ("acknowledgement", "河南省如何推动校企产学研合作?", "您提出的《关于加快高新技术企业发展的提案》收悉,经与省教育厅、省人力资源社会保障厅共同研究,现答复如下:", None, False),
    ("acknowledgement", "这份提案是会同哪些部门办理的?", "您提出的《关于加快高新技术企业发展的提案》收悉,经与省教育厅、省人力资源社会保障厅共同研究,现答复如下:", None, True),
    ("acknowledgement", "营商环境方面做了哪些工作?", "尊敬的王明代表:", None, False),
    ("acknowledgement", "主要做法有哪些?", "主要做法如下:", None, True),  # a lead-in, not a salutation (left to coverage)
    ("acknowledgement", "委员提出了什么?", "委员提出的建议主要包括三个方面,一是加强融资担保体系建设:", None, True),
    ("novel", "参会的5家银行分别是哪几家?", "5家银行和10家企业参会,达成意向融资需求1.13亿元。", None, False),
    ("novel", "参会的5家银行分别是哪几家?", "工商银行、农业银行、中国银行、建设银行、交通银行5家银行参会。", None, True),
    ("novel", "38家小巨人企业共获得多少奖励?", "38家小巨人企业参展。", None, False),
    ("novel", "38家小巨人企业共获得多少奖励?", "38家小巨人企业共获得奖励1900万元。", None, True),
    ("novel", "营口对博士每月补贴多少钱?", "博士每月补贴2000元。", None, True),  # the question states no figure: does not apply
    ("figures", "年营业收入超过百亿元的总部企业有多少家?", "全市总部性质企业共196家,实现营业收入2万亿元。", None, False),
    ("figures", "年营业收入超过百亿元的总部企业有多少家?", "营业收入超过100亿元的总部企业15家。", None, True),  # 百亿 is 100亿
    ("figures", "对市政协第0378号提案的答复中,新增首贷户多少户?", "新增首贷户1200户。", None, True),  # a proposal number is no figure
    ("figures", "获得500万元以上贷款的企业有多少家?", "获得500万元以上贷款的企业有30家。", None, True),
    ("figures", "营口市是否对博士每月补贴2500元?", "博士每月补贴2000元。", None, True),  # yes/no: another figure answers it
    ("event", "岳阳县中小企业融资担保有限公司是哪一年成立的?", "成立岳阳县中小企业融资担保有限公司,通过该融资平台,2022年1月1日至4月30日累计发放贷款17笔。", None, False),
    ("event", "岳阳县中小企业融资担保有限公司是哪一年成立的?", "2019年,成立岳阳县中小企业融资担保有限公司。", None, True),  # the clause right before
    ("event", "该平台从哪一年开始运行?", "自2019年运行以来,陆续开通了18个服务板块。", None, True),
    # who holds a role: the sentence says who 担任 / 牵头 / where it is 设
    ("holder", "纾困专班由哪位领导担任组长?", "近期又专门成立市小微企业和个体工商户纾困专班,统筹推进纾困工作。", None, False),
    ("holder", "纾困专班由哪位领导担任组长?", "纾困专班由分管副市长担任组长。", None, True),
    ("holder", "三家省创新实验室分别由哪所高校牵头建设?", "布局建设嘉庚、翔安、鹭江三家省创新实验室。", None, False),
    ("holder", "“助保贷”融资平台的办公室设在哪里?", "创建了“助保贷”融资平台,办公室设临湘市中小企业服务中心。", None, True),
    ("holder", "领导小组的办公室设在哪个部门?", "成立省促进非公有制经济发展工作领导小组。", None, False),
    ("novel", "今年已完成“小升规”的38户企业分别是哪些?", "制定《2023年“小升规”企业培育工作方案》,已完成“小升规”38户。", None, False),
    ("novel", "今年已完成“小升规”的38户企业分别是哪些?", "甲公司、乙公司、丙公司等38户企业完成“小升规”。", None, True),
    ("novel", "How many of the 320-plus leading enterprises belong to the petrochemical chain?", "链上龙头企业、重点企业总数达到320多家。", None, False),
    ("novel", "How many of the 320-plus leading enterprises belong to the petrochemical chain?", "其中石化产业链龙头企业45家。", None, True),
]


@pytest.mark.parametrize("check,question,sentence,passage,ok", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check_table(check, question, sentence, passage, ok):
    f = _finding(check, question, sentence, passage)
    assert f.check == check
    assert f.ok is ok, f.reason
    if not ok:
        assert f.reason, "a failed finding says why"


def test_checks_that_do_not_apply_pass():
    f = _finding("district", "营口对博士每月补贴多少钱?", "博士每月补贴2000元。")
    assert f.ok and not f.applies


def test_coverage_check_uses_the_config():
    plan = analyze("营口对博士每月补贴多少钱?", _Lex())
    ctx = CheckContext(AnswerConfig(min_coverage_figure=0.5), known=None)
    low = _cand("博士每月补贴2000元。", coverage=0.3)
    assert not CHECKS["coverage"](plan.parts[0], low, ctx).ok
    ctx2 = CheckContext(AnswerConfig(min_coverage_figure=0.2), known=None)
    assert CHECKS["coverage"](plan.parts[0], low, ctx2).ok


def test_run_checks_skips_disabled():
    plan = analyze("沈阳市累计增加首贷户多少户?", _Lex())
    ctx = CheckContext(AnswerConfig(), known=None)
    names = [f.check for f in run_checks(plan.parts[0], _cand("累计发放12亿元。"), ctx, frozenset({"unit"}))]
    assert "unit" not in names and "coverage" in names


def test_district_named_by_the_reply_itself():
    plan = analyze("莲都区形成了哪六大主要产业?", _Lex())
    c = _cand("逐步形成了机械装备制造等六大主要产业。")
    ctx = CheckContext(AnswerConfig(), known=None)
    assert not CHECKS["district"](plan.parts[0], c, ctx).ok
    c.hit.chunk.city = "丽水市莲都区"
    assert CHECKS["district"](plan.parts[0], c, ctx).ok


def test_traditional_sentence_states_the_unit():
    plan = analyze("秭归县财政一次性奖励多少钱?", _Lex())
    ctx = CheckContext(AnswerConfig(), known=None)
    assert CHECKS["unit"](plan.parts[0], _cand("縣級財政給予400萬元的一次性獎勵補助"), ctx).ok


class _WritingLex(_Lex):
    """哈尔滨 has no reply of its own but an indexed passage writes about it."""

    def known(self, word):
        return word in {"哈尔滨", "哈尔滨市"}


@pytest.mark.parametrize("passage, ok", [
    ("深圳市设立融资担保基金,规模20亿元。", False),
    ("哈尔滨市设立融资担保基金,规模20亿元。", True),
])
def test_place_only_written_about_must_be_in_the_passage(passage, ok):
    plan = analyze("哈尔滨为中小企业设立的融资担保基金规模是多少?", _WritingLex())
    assert plan.unknown_places == [] and plan.parts[0].places == ["哈尔滨市"]
    assert "哈尔滨" in plan.terms  # the place is what the passage must be about, so it is searched for
    ctx = CheckContext(AnswerConfig(), known=lambda w: True)
    f = CHECKS["place"](plan.parts[0], _cand(passage), ctx)
    assert f.ok is ok and f.applies


def test_place_check_does_not_apply_to_indexed_places():
    plan = analyze("营口对博士每月补贴多少钱?", _WritingLex())
    f = CHECKS["place"](plan.parts[0], _cand("博士每月补贴2000元。"), CheckContext(AnswerConfig()))
    assert f.ok and not f.applies


def test_figures_inside_names_and_titles_are_not_stated():
    from rag.checks import states_figure

    assert not states_figure("全市干部开展了“千人帮千企”专项行动")
    assert not states_figure("出台《2023年优化营商环境工作方案》")
    assert states_figure("“千人帮千企”行动走访企业1200家")


def test_head_compound_with_a_part_no_reply_uses():
    """利润总额: no reply uses 利润 though they use 总额 -> the head fails; an all-unknown paraphrase is skipped."""
    plan = analyze("2023年软件业实现的利润总额是多少?", _Lex())
    part = plan.parts[0]
    known = {"总额", "软件", "营收"}
    ctx = CheckContext(AnswerConfig(), known=lambda w: w in known)
    f = CHECKS["head"](part, _cand("产业实现税收总额同比增长12.8%"), ctx)
    assert not f.ok and "利润" in f.reason
    ctx_none = CheckContext(AnswerConfig(), known=lambda w: False)
    assert CHECKS["head"](part, _cand("产业实现税收总额同比增长12.8%"), ctx_none).ok


@pytest.mark.parametrize("term, known, stem", [
    ("进出口额", {"进出口", "出口"}, "进出口"),  # the replies say 进出口, never 进出口额
    ("进出口总额", {"进出口"}, "进出口"),
    ("企业数", {"企业"}, "企业"),
    ("利润总额", {"总额"}, "利润总额"),  # no reply uses 利润: the compound still names what none states
    ("产值", {"产"}, "产值"),  # a one-character stem is no head
    ("进出口额", {"进出口额", "出口"}, "进出口额"),  # the stem itself unused: unchanged
])
def test_measured_stem(term, known, stem):
    from rag.checks import measured_stem

    assert measured_stem(term, lambda w: w in known) == stem


def test_head_measured_by_a_suffix_no_reply_uses():
    """进出口额 asked, the replies write 进出口 and its figure: the head is checked as 进出口, not refused."""
    plan = analyze("2020年上半年山东进出口额是多少?", _Lex())
    part = plan.parts[0]
    known = {"进出口", "出口", "山东"}
    ctx = CheckContext(AnswerConfig(), known=lambda w: w in known)
    assert CHECKS["head"](part, _cand("上半年全省进出口9000亿元，增长5%"), ctx).ok
    f = CHECKS["head"](part, _cand("上半年全省实现利润500亿元"), ctx)
    assert not f.ok and "进出口" in f.reason


def test_word_window_and_multi_character_units():
    from rag.plan import head_terms, word_window
    from rag.textproc import word_spans

    spans = word_spans("雏鹰瞪羚独角兽企业")
    assert "".join(w for w, _, _ in spans) == "雏鹰瞪羚独角兽企业" and all("雏鹰瞪羚独角兽企业"[a:b] == w for w, a, b in spans)
    from rag.textproc import unit_kind

    assert word_window("雏鹰瞪羚独角兽企业", 4, end=True) == "独角兽企业"
    assert word_window("企业", 4, end=True) == "企业"
    assert head_terms("产业园的规划总面积是多少平方公里") == ("总面积",)
    assert unit_kind("规划总面积是多少平方公里") == "measure:平方公里"


@pytest.mark.parametrize("question,kind", [
    ("By how much did the share of high-tech manufacturing in Henan's above-designated-size industry rise?", "pct_change"),
    ("By how many percentage points did the rate fall?", "pct_change"),
    ("What share of small-business loans are credit loans?", "pct"),
    ("In Shenyang, how long does it take on average to complete business registration?", "duration"),
    ("沈阳开办企业需要多长时间?", "duration"),
    ("How many national-level specialized little giant firms does Tianjin have?", "count:家户"),
    ("How many talents did Chongqing bring in during 2022?", "count:人"),
    ("How much money did Zigui put into the fund?", "money"),
])
def test_english_questions_ask_a_kind_of_figure(question, kind):
    from rag.textproc import unit_kind

    assert unit_kind(question) == kind


def test_a_duration_is_not_stated_by_half_a_year_or_a_date():
    from rag.textproc import unit_pattern

    need = unit_pattern("duration")
    assert need.search("企业登记办理平均用时压缩至1.4个小时") and need.search("压缩至3个工作日") and need.search("一个半月")
    assert not need.search("上半年,全市企业主体登记技术合同2748项") and not need.search("2023年3月22日")


def test_quoted_name_in_the_lines_of_its_paragraph_above_and_the_passage_before():
    plan = analyze("“@沈阳营商”小程序有多少实名注册用户?", _Lex())
    part, ctx = plan.parts[0], CheckContext(AnswerConfig(), known=None)
    said = "截至目前,平台总访问量已超过600万次,实名注册用户12万。"
    # the name two lines up, no item start between: the same paragraph, cut into lines
    above = _cand(said, "市营商局建设“@沈阳营商”移动微服务平台。\n自2019年运行以来,开通18个服务板块。\n" + said)
    assert CHECKS["quoted"](part, above, ctx).ok
    # the name in another item (二是… starts between them): not this paragraph's
    other = _cand(said, "一是建设“@沈阳营商”移动微服务平台。\n二是建设政务平台。" + said)
    assert not CHECKS["quoted"](part, other, ctx).ok
    # the passage goes on from the one before it, whose last line names it
    prev = "一、关于惠企政策\n市营商局建设“@沈阳营商”移动微服务平台。"
    ctx_before = CheckContext(AnswerConfig(), known=None, before=lambda chunk: prev)
    cut = _cand(said, said)
    assert CHECKS["quoted"](part, cut, ctx_before).ok and not CHECKS["quoted"](part, cut, ctx).ok


def test_ten_thousand_hundred_millions_alone_is_no_figure():
    from rag.checks import states_figure

    assert not states_figure("助推我市打造湖南万亿现代石化产业核心基地")
    assert states_figure("培育三家企业") and states_figure("达到两万亿")


def test_figures_are_amounts_and_counts_not_dates_numbers_or_names():
    from rag.checks import figures

    assert figures("超过百亿元的有多少家?") == {("100", "亿", "元")}
    assert figures("5家银行和10家企业参会,达成意向融资需求1.13亿元") == {("5", "", "家"), ("10", "", "家"), ("1.13", "亿", "元")}
    assert figures("对市政协十四届三次会议第0378号提案的答复(豫工信办案〔2020〕120号)") == set()
    assert figures("2023年3月1日起,“千人帮千企”行动") == set()
    assert figures("3.50亿元") == figures("3.5亿元")


@pytest.mark.parametrize("question, known, topic", [
    ("各地对从事低空经济的中小企业有哪些专项补贴政策?", {"经济", "中小企业", "补贴", "政策", "专项"}, "低空"),
    ("哪些城市对首贷户给予贴息?", {"首贷户", "贴息", "城市"}, ""),
    ("哪些城市帮企业省下借钱的开销?", {"企业", "城市"}, ""),  # unused words alone: a paraphrase, not a topic
])
def test_unused_topic(question, known, topic):
    from rag.checks import unused_topic

    part = analyze(question, _Lex()).parts[0]
    assert unused_topic(part, lambda w: w in known) == topic


def test_a_comparative_question_about_a_topic_no_reply_uses_is_refused(eval_pipeline):
    a = eval_pipeline.ask("各地对从事低空经济的中小企业有哪些专项补贴政策?")
    assert a.abstained and any("低空" in w.get("reason", "") for w in a.why), a.why
    assert not eval_pipeline.ask("哪些城市对首贷户给予贴息?").abstained


def test_a_quote_no_reply_uses_is_the_askers_wording():
    """“抵押加信用” is in no reply (they write “抵押+信用”): a paragraph with most of its characters names it; an
    invented name (“金小二”) is still not named by a paragraph about “三贷中心”."""
    ctx = CheckContext(AnswerConfig(), known=lambda w: w not in {"抵押加信用", "金小二"})
    part = analyze("沈阳银行用“抵押加信用”的办法给多少户企业放款?", _Lex()).parts[0]
    assert CHECKS["quoted"](part, _cand("组织银行通过“抵押+信用”方式,对20户企业给予贷款。"), ctx).ok
    part = analyze("“金小二”服务了多少家企业?", _Lex()).parts[0]
    assert not CHECKS["quoted"](part, _cand("已服务企业300家。", "“三贷中心”已服务企业300家。"), ctx).ok


def test_a_concept_written_after_another_is_a_kind_of_it():
    """专精特新小微企业 are 专精特新 firms: a passage about 专精特新企业 names them; 小微企业 alone is not 专精特新."""
    ctx = CheckContext(AnswerConfig(), known=lambda w: True)
    part = analyze("郑州的专精特新小微企业想跟国外企业合作,政府鼓励哪些方式?", _Lex()).parts[0]
    assert {"专精特新", "小微企业"} <= set(part.concepts)
    assert CHECKS["concept"](part, _cand("鼓励有条件的专精特新企业以参股、换股、并购等形式与国际品牌企业合作。"), ctx).ok
    part = analyze("郑州的小微企业想跟国外企业合作,政府鼓励哪些方式?", _Lex()).parts[0]
    assert not CHECKS["concept"](part, _cand("鼓励有条件的专精特新企业以参股、换股、并购等形式与国际品牌企业合作。"), ctx).ok


def test_a_colloquial_concept_draws_no_line():
    """科技小公司 is the asker's everyday word (the thesaurus' 小公司 for 小微企业): no concept check, so 创业中小科技企业
    answers; the field's own names (创新型中小企业, 北京证券交易所) still do."""
    from rag.textproc import colloquial

    assert colloquial("小公司") and not colloquial("小微企业") and not colloquial("北京证券交易所")
    assert "小公司" not in analyze("给刚起步的科技小公司借钱时,多些什么?", _Lex()).parts[0].concepts
    assert "北京证券交易所" in analyze("秭归县对在北京证券交易所上市的企业奖励多少?", _Lex()).parts[0].concepts
