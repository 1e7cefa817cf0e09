"""Structured output (rag.structured) and the plan's passages for the model (rag.grounding)."""
from __future__ import annotations

import json

import pytest

from rag.grounding import quotes, select, trim
from rag.structured import StreamRenderer, answer_schema, grammar_schema, mode_for, parse, render, request_kwargs, translation_schema
from rag.types import Answer, Chunk, Citation, Hit, PlanPart, QuestionPlan

REFUSAL = "资料中未找到能回答该问题的内容。"
ANSWER = {"refusal": False, "sentences": [{"text": "营口市对博士每月补贴2000元。", "citations": [1]}, {"text": "沈阳市对首贷户贴息。", "citations": [2, 1]}]}


def test_schema_allows_only_the_prompts_passage_numbers():
    s = answer_schema(3)
    item = s["properties"]["sentences"]["items"]["properties"]["citations"]
    assert item["items"]["enum"] == [1, 2, 3] and item["minItems"] == 1
    assert s["required"] == ["refusal", "sentences"]
    json.dumps(s)  # JSON-able as sent


def test_an_english_schema_keeps_chinese_inside_brackets_only():
    import re

    from rag.structured import ENGLISH_TEXT

    text = answer_schema(2, english=True)["properties"]["sentences"]["items"]["properties"]["text"]
    assert text["pattern"] == ENGLISH_TEXT and "pattern" not in answer_schema(2)["properties"]["sentences"]["items"]["properties"]["text"]
    ok = re.compile(ENGLISH_TEXT)
    assert ok.match("Yingkou pays CNY 2,000 per month (每月2000元).")
    assert ok.match("No figure is given.")
    assert not ok.match("营口市对博士每月补贴2000元。")
    assert not ok.match("Yingkou pays 每月2000元.")
    g = request_kwargs("json_object", answer_schema(2, english=True))["response_format"]["schema"]
    assert g["oneOf"][0]["properties"]["sentences"]["items"]["properties"]["text"]["pattern"] == ENGLISH_TEXT


def test_parse_and_render():
    st = parse(json.dumps(ANSWER, ensure_ascii=False))
    assert st is not None and st.complete and not st.refusal
    assert render(st, REFUSAL) == "营口市对博士每月补贴2000元。[1]沈阳市对首贷户贴息。[2][1]"
    assert render(st, REFUSAL, comparative=True).count("\n") == 1
    assert render(parse('{"refusal": true, "sentences": []}'), REFUSAL) == REFUSAL


def test_an_items_citations_mark_every_sentence_of_its_text():
    """A model that writes two sentences in one item cited them both: each carries the markers (the gate's
    `citations` rule checks sentences, and each sentence's figures are checked against what it cites)."""
    two = {"refusal": False, "sentences": [{"text": "Doctors get CNY 2,000 (2000元). Masters get CNY 1,000 (1000元).", "citations": [1]}]}
    assert render(parse(json.dumps(two, ensure_ascii=False)), REFUSAL, english=True) == \
        "Doctors get CNY 2,000 (2000元).[1] Masters get CNY 1,000 (1000元).[1]"
    one = {"refusal": False, "sentences": [{"text": "营口市对博士每月补贴2000元。硕士1000元。", "citations": [2]}]}
    assert render(parse(json.dumps(one, ensure_ascii=False)), REFUSAL) == "营口市对博士每月补贴2000元。[2]硕士1000元。[2]"


def test_parse_reads_fences_markers_in_text_and_a_cut_off_answer():
    raw = "```json\n" + json.dumps({"refusal": False, "sentences": [{"text": "每月2000元。[1]", "citations": [1]}]}, ensure_ascii=False) + "\n```"
    assert render(parse(raw), REFUSAL) == "每月2000元。[1]"
    cut = '{"refusal": false, "sentences": [{"text": "每月2000元。", "citations": [1]}, {"text": "连续发放'
    st = parse(cut)
    assert st is not None and not st.complete
    assert st.sentences[0] == ("每月2000元。", [1])
    assert parse("营口市每月2000元。[1]") is None  # plain text: read as text


def test_stream_renderer_shows_text_as_it_arrives_and_never_takes_it_back():
    raw = json.dumps(ANSWER, ensure_ascii=False)
    r = StreamRenderer(REFUSAL)
    shown = "".join(r.feed(raw[i : i + 3]) for i in range(0, len(raw), 3))
    assert shown == render(parse(raw), REFUSAL)
    r = StreamRenderer(REFUSAL)
    assert "".join(r.feed(c) for c in '{"refusal": true, "sentences": []}') == REFUSAL


def test_stream_renderer_escapes():
    raw = json.dumps({"refusal": False, "sentences": [{"text": "“金小二”\u4e00", "citations": [1]}]})  # \\u escapes, ASCII only
    r = StreamRenderer(REFUSAL)
    assert "".join(r.feed(ch) for ch in raw) == "“金小二”一[1]"


def test_modes_and_request_kwargs():
    assert mode_for("llamacpp", "auto") == "json_object"
    assert mode_for("openai", "auto", local=True) == "json_object"
    assert mode_for("openai", "auto", local=False) == "json_schema"
    assert mode_for("ollama", "auto") == "ollama"
    assert mode_for("llamacpp", "off") == ""
    s = answer_schema(2)
    g = grammar_schema(2)  # a constrained backend: a refusal, or at least one sentence
    assert request_kwargs("json_object", s) == {"response_format": {"type": "json_object", "schema": g}}
    answer, refusal = g["oneOf"]
    assert answer["properties"]["sentences"]["minItems"] == 1 and refusal["properties"]["sentences"]["maxItems"] == 0
    assert request_kwargs("json_schema", s)["response_format"]["json_schema"]["strict"] is True
    assert request_kwargs("ollama", s) == {"format": g}
    assert request_kwargs("", s) == {}

    class ChatOpenAI:  # the body of an OpenAI-compatible request keeps what the backend put there
        extra_body = {"max_tokens": 128}

    kw = request_kwargs("json_object", s, ChatOpenAI())
    assert kw == {"extra_body": {"max_tokens": 128, "response_format": {"type": "json_object", "schema": g}}}


def test_translation_schema_fixes_the_number_of_sentences_and_their_citations():
    t = translation_schema([1, 1, 2])
    items = t["properties"]["sentences"]["prefixItems"]
    assert [i["properties"]["citations"]["const"] for i in items] == [[1], [1], [2]]
    assert t["properties"]["sentences"]["minItems"] == t["properties"]["sentences"]["maxItems"] == 3
    assert t["properties"]["refusal"] == {"const": False}
    assert request_kwargs("json_object", t) == {"response_format": {"type": "json_object", "schema": t}}  # not rewritten
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    gbnf = grammar.json_schema_to_gbnf(json.dumps(t))  # what llama.cpp samples under: a tuple of three sentences
    assert "sentences-tuple-2 " in gbnf and "sentences-tuple-3" not in gbnf and 'sentences-tuple-2-citations ::= "[2]"' in gbnf


# ------------------------------------------------------------------ grounding
LONG = "一是建立机制。" + "加强金融服务工作。" * 20 + "对首贷户给予贴息，最高10万元。" + "持续优化营商环境。" * 20


def _hit(cid: str, text: str, doc: str = "d1", rank: int = 1) -> Hit:
    return Hit(chunk=Chunk(chunk_id=cid, doc_id=doc, ordinal=0, text=text, section_path=["一、融资"], city="沈阳市"), score=1.0, rank=rank)


def _plan(kind: str = "fact") -> QuestionPlan:
    part = PlanPart(text="首贷户贴息多少", terms=["首贷户", "贴息"], asks_number=True)
    return QuestionPlan(text="沈阳对首贷户贴息多少?", kind=kind, parts=[part], whole=part, terms=["首贷户", "贴息"])


def test_trim_keeps_the_quoted_sentence_and_marks_cuts():
    t = trim(LONG, [21], 80)
    assert "对首贷户给予贴息，最高10万元。" in t and len(t) <= 90 and t.startswith("…") and t.endswith("…")
    assert trim("短。", [0], 80) == "短。"


def test_select_uses_the_extractive_answers_passages_then_one_more():
    hits = [_hit("a#1", LONG, "a"), _hit("b#1", "无关内容。" * 5, "b", 2), _hit("c#1", "对首贷户贴息。", "c", 3)]
    ext = Answer("q", "对首贷户给予贴息，最高10万元。[1]", False,
                 [Citation(1, "a", "沈阳市", "", "一、融资", LONG, 1.0, quote="对首贷户给予贴息，最高10万元。", chunk_id="a#1")])
    sel = select(_plan(), hits, ext, limit=4, chars=120)
    assert [h.chunk.chunk_id for h in sel.hits] == ["a#1", "b#1"] and sel.from_answer == 1
    assert "最高10万元" in sel.texts[0] and len(sel.texts[0]) <= 130
    refused = Answer("q", REFUSAL, True, [])
    sel = select(_plan(), hits, refused, limit=2, chars=120)
    assert [h.chunk.chunk_id for h in sel.hits] == ["a#1", "b#1"] and sel.from_answer == 0
    assert "首贷户" in sel.texts[0]  # trimmed to the sentence with the plan's terms


def test_quotes_are_the_extractive_answers_quoted_sentences_only():
    hits = [_hit("a#1", LONG, "a"), _hit("b#1", "无关内容。" * 5, "b", 2)]
    ext = Answer("q", "…", False, [Citation(1, "a", "沈阳市", "", "一、融资", LONG, 1.0, quote="一是建立机制。\n对首贷户给予贴息，最高10万元。", chunk_id="a#1"),
                                   Citation(2, "z", "沈阳市", "", "二、其他", "不在检索结果中。", 0.5, quote="不在检索结果中。", chunk_id="z#9")])
    sel = quotes(hits, ext)
    assert [h.chunk.chunk_id for h in sel.hits] == ["a#1", "z#9"] and sel.from_answer == 2
    assert sel.texts == ["一是建立机制。\n对首贷户给予贴息，最高10万元。", "不在检索结果中。"]
    assert sel.hits[0] is hits[0] and sel.hits[1].chunk.section_path == ["二、其他"]  # a cited chunk not retrieved is rebuilt
    assert quotes(hits, Answer("q", REFUSAL, True, [])).hits == []


def test_select_comparative_one_passage_per_document():
    hits = [_hit("a#1", "首贷户贴息。", "a"), _hit("a#2", "首贷户贴息二。", "a", 2), _hit("b#1", "首贷户贴息三。", "b", 3)]
    sel = select(_plan("comparative"), hits, None, limit=4)
    assert [h.chunk.chunk_id for h in sel.hits] == ["a#1", "b#1"]


def test_tags_left_in_a_sentence_are_dropped():
    raw = json.dumps({"refusal": False, "sentences": [{"text": "出台了若干政策措施。</text>,", "citations": [1]}]}, ensure_ascii=False)
    assert render(parse(raw), REFUSAL) == "出台了若干政策措施。[1]"


def test_stream_renderer_passes_plain_text_through():
    """A server that ignores response_format streams plain text: it is shown as it comes, not held back."""
    from rag.structured import StreamRenderer

    r = StreamRenderer("资料中未找到")
    assert r.feed("营口市") == "营口市" and r.feed("每月补贴") == "每月补贴" and r.feed("2000元[1]。") == "2000元[1]。"
