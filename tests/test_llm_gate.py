"""The gate in the LLM path (rag.llm.llm_answer): a scripted chat model stands in for the LLM, so these tests
are fast and exact about what is shown, what is kept and why. Real models: tests/test_llm.py."""
from __future__ import annotations

import json
import threading

import pytest

from rag import llm as llm_mod
from rag.config import Settings
from rag.llm import Backend, estimate_tokens, llm_answer
from rag.types import Answer, Chunk, Citation, Hit, PlanPart, QuestionPlan

P1 = "三是实施生活补贴办法,到我市企业就业的博士研究生、硕士研究生,每月分别享受2000元、1000元的生活补贴,补贴期限2年。"
P2 = "四是开展人才招聘活动,举办招聘会30余场。"


def _hits() -> list[Hit]:
    return [
        Hit(Chunk("yingkou#1", "yingkou", 1, P1, ["一、人才"], city="营口市", date="2024-06-05"), 1.0, 1),
        Hit(Chunk("yingkou#2", "yingkou", 2, P2, ["一、人才"], city="营口市"), 0.5, 2),
    ]


def _plan(text="营口市对博士每月补贴多少?", language="zh", unknown=()) -> QuestionPlan:
    part = PlanPart(text=text, terms=["博士", "补贴"], asks_number=True, unit="money")
    return QuestionPlan(text=text, kind="fact", parts=[part], whole=part, terms=["博士", "补贴"], language=language, unknown_places=list(unknown))


def _extractive(hits) -> Answer:
    q = "每月分别享受2000元、1000元的生活补贴"
    return Answer("q", P1 + "[1]", False, [Citation(1, "yingkou", "营口市", "", "一、人才", P1, 1.0, quote=q, chunk_id="yingkou#1")])


class Chunked:
    def __init__(self, content):
        self.content = content


class ScriptedChat:
    """A chat model that streams a fixed answer; records the keyword arguments it was called with."""

    def __init__(self, answer: str, pieces: int = 4):
        self.answer, self.pieces, self.calls = answer, pieces, []

    def stream(self, messages, **kw):
        self.calls.append({"messages": messages, **kw})
        n = max(1, len(self.answer) // self.pieces)
        for i in range(0, len(self.answer), n):
            yield Chunked(self.answer[i : i + n])


def _settings(**llm) -> Settings:
    return Settings().with_overrides(**{f"llm.{k}": v for k, v in llm.items()})


@pytest.fixture
def scripted(monkeypatch):
    box = {}

    def use(answer: str, provider: str = "llamacpp"):
        chat = ScriptedChat(answer)
        box["chat"] = chat
        monkeypatch.setattr(llm_mod, "get_backend", lambda settings, p: Backend(p, chat, estimate_tokens, 4096, 256, lock=threading.Lock()))
        return chat

    return use


def _json(*sentences, refusal=False) -> str:
    return json.dumps({"refusal": refusal, "sentences": [{"text": t, "citations": c} for t, c in sentences]}, ensure_ascii=False)


def test_a_good_structured_answer_is_shown(scripted):
    chat = scripted(_json(("营口市对博士研究生每月给予2000元生活补贴。", [1])))
    hits = _hits()
    events, tokens = [], []
    ans = llm_answer(_settings(), "llamacpp", _plan(), hits, _extractive(hits), on_token=tokens.append, on_event=events.append)
    assert ans.provider == "llamacpp" and ans.answer == "营口市对博士研究生每月给予2000元生活补贴。[1]"
    assert ans.llm["shown"] == "llm" and ans.llm["gate"]["passed"] and ans.llm["structured"] == "json_object"
    assert "".join(tokens) == ans.answer  # the JSON streamed as answer text
    assert [e["stage"] for e in events] == ["generate", "first_token", "verify"]
    rf = chat.calls[0]["response_format"]
    answer = rf["schema"]["oneOf"][0]
    assert rf["type"] == "json_object" and answer["properties"]["sentences"]["items"]["properties"]["citations"]["items"]["enum"] == [1, 2]
    # the model read the plan's passages: the extractive answer's, trimmed, and one more
    user = chat.calls[0]["messages"][-1].content
    assert user.count("<passage id=") == 2 and "请只输出一个JSON对象" in user


def test_an_unsupported_number_is_not_shown(scripted):
    scripted(_json(("营口市对博士每月补贴2500元。", [1])))
    hits = _hits()
    ext = _extractive(hits)
    ans = llm_answer(_settings(), "llamacpp", _plan(), hits, ext)
    assert ans.answer == ext.answer and ans.provider == "extractive"
    assert ans.note.startswith("LLM (llamacpp) answer not used: 1 number(s) not in the cited passage: 2500元")
    assert ans.llm["shown"] == "extractive" and ans.llm["text"] == "营口市对博士每月补贴2500元。[1]"
    assert [f["rule"] for f in ans.llm["gate"]["failures"]] == ["numbers", "omits"]
    d = ans.to_dict()
    assert d["llm"]["text"] == "营口市对博士每月补贴2500元。[1]"  # `rag ask --json` shows the model's text


def test_gate_off_shows_the_answer_with_its_warning(scripted):
    scripted(_json(("营口市对博士每月补贴2500元。", [1])))
    hits = _hits()
    ans = llm_answer(_settings(gate=False), "llamacpp", _plan(), hits, _extractive(hits))
    assert ans.provider == "llamacpp" and "2500元⚠" in ans.answer and ans.unsupported == ["2500元"]
    assert not ans.llm["gate"]["passed"]  # still recorded


@pytest.mark.parametrize("answer,rule", [
    ("请回答：" * 30, "repetition"),
    ("〔城市A〕: 〔该城市资料中的做法〕[1]\n〔城市B〕: 〔该城市资料中的做法〕[2]", "echo"),
    ("营口市对博士每月补贴2000元。", "citations"),
    ("营口市对博士每月补贴2000元。[5]", "citations"),
    ("资料中未找到能回答该问题的内容。", "refusal"),
])
def test_plain_text_answers_that_fail_the_gate(scripted, answer, rule):
    scripted(answer)
    hits = _hits()
    ext = _extractive(hits)
    ans = llm_answer(_settings(structured="off"), "llamacpp", _plan(), hits, ext)
    assert ans.answer == ext.answer and ans.llm["shown"] == "extractive"
    assert rule in [f["rule"] for f in ans.llm["gate"]["failures"]]
    assert "answer not used" in ans.note


def test_english_answer_with_the_chinese_figure_passes(scripted):
    chat = scripted(_json(("Yingkou gives doctoral graduates a living subsidy of CNY 2,000 per month (每月2000元).", [1])))
    hits = _hits()
    ans = llm_answer(_settings(english="answer"), "llamacpp", _plan("How much does Yingkou pay doctoral graduates per month?", "en"), hits,
                     _extractive(hits))
    assert ans.llm["shown"] == "llm", ans.note
    assert ans.answer.endswith("(每月2000元).[1]")
    user = chat.calls[0]["messages"][-1].content
    assert "问题是英文的" in user and "逐句翻译" not in user and P2[:10] in user  # answer mode: the plan's passages


def test_translate_mode_gives_the_model_only_the_quotes_with_fixed_citations(scripted):
    """[llm] english = "translate" (default): the passages are the extractive answer's quoted sentences; the grammar
    asks for one English sentence per quoted sentence, each with its passage's citation fixed."""
    chat = scripted(_json(("Doctoral and master's graduates receive CNY 2,000 (2000元) and CNY 1,000 (1000元) a month.", [1])))
    hits = _hits()
    ans = llm_answer(_settings(), "llamacpp", _plan("How much does Yingkou pay doctoral graduates per month?", "en"), hits, _extractive(hits))
    assert ans.llm["shown"] == "llm" and ans.llm["task"] == "translate", ans.note
    user = chat.calls[0]["messages"][-1].content
    # the quoted sentence with its figures already in English (rag.english.protect), the question not stated
    assert "逐句翻译" in user and "每月分别享受 CNY 2,000 (2000元) 、 CNY 1,000 (1000元) 的生活补贴" in user, user
    assert "How much" not in user and "Yingkou (营口市)" in user
    # the translation shown is followed by the sentence it translates, verbatim, with its citation
    english, _, original = ans.answer.partition("原文 (Chinese original):")
    assert "CNY 2,000 (2000元)" in english and "每月分别享受2000元、1000元的生活补贴" in original and original.rstrip().endswith("[1]")
    assert ans.citations[0].quote in ans.citations[0].text and "2000元" in ans.citations[0].quote
    off = llm_answer(_settings(translation_originals=False), "llamacpp", _plan("How much does Yingkou pay doctoral graduates per month?", "en"),
                     hits, _extractive(hits))
    assert "原文" not in off.answer
    assert P2[:10] not in user and "补贴期限2年" not in user  # neither the other passage nor the unquoted rest of this one
    items = chat.calls[0]["response_format"]["schema"]["properties"]["sentences"]["prefixItems"]
    assert [i["properties"]["citations"] for i in items] == [{"const": [1]}]
    # a translation that drops the quoted figures fails `omits`; the extractive answer is shown
    scripted(_json(("Yingkou gives doctoral graduates a living subsidy.", [1])))
    ans = llm_answer(_settings(), "llamacpp", _plan("How much does Yingkou pay doctoral graduates per month?", "en"), hits, _extractive(hits))
    assert ans.llm["shown"] == "extractive" and "omits" in [f["rule"] for f in ans.llm["gate"]["failures"]]
    # a translation is checked against the sentences it translates: the reply's date (2024-06-05, the passage
    # header) or a figure of the unquoted rest of the passage (2年) is not in them
    for extra in ("On June 5, 2024, doctoral", "For 2 years (2年), doctoral"):
        scripted(_json((f"{extra} graduates receive CNY 2,000 (2000元) and master's CNY 1,000 (1000元) a month.", [1])))
        ans = llm_answer(_settings(), "llamacpp", _plan("How much does Yingkou pay doctoral graduates per month?", "en"), hits, _extractive(hits))
        assert ans.llm["shown"] == "extractive", extra


def test_translate_mode_is_not_used_for_chinese_or_refused_questions(scripted):
    from rag.llm import translating

    hits = _hits()
    en = _plan("How much does Yingkou pay doctoral graduates per month?", "en")
    assert translating(_settings(), en, _extractive(hits))
    assert not translating(_settings(), _plan(), _extractive(hits))
    assert not translating(_settings(english="answer"), en, _extractive(hits))
    assert not translating(_settings(), en, Answer("q", "资料中未找到能回答该问题的内容。", True, []))


def test_a_place_without_a_reply_never_reaches_the_model(scripted):
    chat = scripted(_json(("广州市每月补贴2000元。", [1])))
    refused = Answer("q", "资料中未找到关于广州市的答复,无法回答该问题。", True, [])
    ans = llm_answer(_settings(), "llamacpp", _plan(unknown=["广州市"]), _hits(), refused)
    assert ans is refused and not chat.calls


def test_the_model_does_not_overrule_the_answerers_refusal(scripted):
    chat = scripted(_json(("2020年上半年山东民营经济增加值占全省GDP的比重为51.2%。", [1])))  # the 1.5B on fr003
    refused = Answer("q", "资料中未找到能回答该问题的内容。", True, [])
    ans = llm_answer(_settings(), "llamacpp", _plan(), _hits(), refused)
    assert ans is refused and not chat.calls
    # [llm] ask_when_refused = true asks it; the gate still judges what it wrote
    ans = llm_answer(_settings().with_overrides(**{"llm.ask_when_refused": True}), "llamacpp", _plan(), _hits(), refused)
    assert chat.calls and ans.llm["shown"] == "extractive" and ans.abstained
    # both refuse: the answerer's refusal is shown (one wording, abstained), not the model's
    scripted(_json(refusal=True))
    ans = llm_answer(_settings(ask_when_refused=True), "llamacpp", _plan(), _hits(), refused)
    assert ans.answer == refused.answer and ans.abstained and ans.llm["shown"] == "extractive"


def test_openai_local_server_gets_the_schema_in_the_body(scripted):
    class ChatOpenAI(ScriptedChat):
        extra_body = {"max_tokens": 256}

    chat = ChatOpenAI(_json(("每月2000元。", [1])))
    import rag.llm as m

    m_get = m.get_backend
    try:
        m.get_backend = lambda s, p: Backend(p, chat, estimate_tokens, 4096, 256)
        hits = _hits()
        llm_answer(_settings(base_url="http://127.0.0.1:8000/v1"), "openai", _plan(), hits, _extractive(hits))
    finally:
        m.get_backend = m_get
    body = chat.calls[0]["extra_body"]
    assert body["max_tokens"] == 256 and body["response_format"]["type"] == "json_object"


def test_stop_ends_generation_and_nothing_is_shown(scripted):
    """Stop (rag.webapp.stream.Stopped, raised from on_token) ends the model's stream: no fallback answer."""
    from rag.webapp.stream import Stopped

    scripted(_json(("营口市对博士每月补贴2000元。", [1]), ("补贴期限2年。", [1])))
    hits = _hits()
    seen = []

    def on_token(t):
        seen.append(t)
        raise Stopped()

    with pytest.raises(Stopped):
        llm_answer(_settings(), "llamacpp", _plan(), hits, _extractive(hits), on_token=on_token)
    assert len(seen) == 1


def test_the_gate_reads_the_plans_terms_for_dates(scripted):
    """rule `dates` in the LLM path: the plan's key terms tell which of the passage's dates was asked."""
    text = "2021年10月,我市发布《促进专精特新企业高质量发展行动计划》,2023年9月我市印发《民营经济实施方案》。"
    hits = [Hit(Chunk("wuhan#1", "wuhan", 1, text, ["一、政策"], city="武汉市"), 1.0, 1)]
    part = PlanPart(text="When did Wuhan issue its action plan?", terms=["行动计划", "专精特新"], asks_number=True, unit="date")
    plan = QuestionPlan(text=part.text, kind="fact", parts=[part], whole=part, terms=["行动计划", "专精特新"], language="en")
    ext = Answer("q", text + "[1]", False, [Citation(1, "wuhan", "武汉市", "", "一、政策", text, 1.0, quote=text, chunk_id="wuhan#1")])
    scripted(_json(("Wuhan issued its action plan in September 2023.", [1])))
    ans = llm_answer(_settings(), "llamacpp", plan, hits, ext)
    assert ans.llm["shown"] == "extractive" and "dates" in [f["rule"] for f in ans.llm["gate"]["failures"]]
    scripted(_json(("Wuhan issued its action plan in October 2021.", [1])))
    ans = llm_answer(_settings(), "llamacpp", plan, hits, ext)
    assert "dates" not in [f["rule"] for f in ans.llm["gate"]["failures"]]
