"""Consistency checks for the gold QA sets (data/gold/*.jsonl: qa.jsonl, the development set, and the held-out
sets written without running the tool).

Stdlib + pytest only; does not import the ``rag`` package.

Normalisation for all text comparisons: NFKC, then all whitespace removed.
"""

import json
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "data" / "gold" / "qa.jsonl"
GOLD_FILES = sorted((ROOT / "data" / "gold").glob("*.jsonl"))
DOC_DIRS = [ROOT / "data" / "replies", ROOT / "data" / "more-replies"]

FIELDS = {"id", "question", "answer", "answerable", "doc_ids", "evidence", "must_include", "type"}
TYPES = {"fact", "section", "cross_doc", "paraphrase", "english", "unanswerable"}
MIN_QUESTIONS = 100
EVIDENCE_MIN, EVIDENCE_MAX = 6, 40


def norm(s: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", s))


def _load_docs():
    docs = {}
    for d in DOC_DIRS:
        for p in sorted(d.glob("*.txt")):
            assert p.stem not in docs, f"duplicate document id {p.stem}"
            docs[p.stem] = norm(p.read_text(encoding="utf-8"))
    return docs


def _load_gold(path=GOLD):
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:  # pragma: no cover - reported by test
                raise AssertionError(f"line {lineno}: invalid JSON: {e}") from e
    return rows


DOCS = _load_docs()
ROWS = [row for path in GOLD_FILES for row in _load_gold(path)]  # every gold file is checked the same way


def _label(row):
    return row.get("id", "?")


def test_documents_present():
    assert len(DOCS) == 62, sorted(DOCS)  # 5 bundled, 001-020, 101-137


def test_size_and_type_coverage():
    dev = _load_gold(GOLD)
    assert len(dev) >= MIN_QUESTIONS
    present = {r.get("type") for r in dev}
    missing = TYPES - present
    assert not missing, f"no question of type(s): {sorted(missing)}"


def test_ids_unique():
    ids = [r.get("id") for r in ROWS]
    assert all(isinstance(i, str) and i for i in ids)
    dups = sorted({i for i in ids if ids.count(i) > 1})
    assert not dups, f"duplicate ids: {dups}"


@pytest.mark.parametrize("row", ROWS, ids=_label)
def test_schema(row):
    assert set(row) == FIELDS, f"fields {sorted(row)}"
    assert row["type"] in TYPES
    assert isinstance(row["question"], str) and row["question"].strip()
    assert isinstance(row["answer"], str)
    assert isinstance(row["answerable"], bool)
    for key in ("doc_ids", "evidence", "must_include"):
        assert isinstance(row[key], list), key
        assert all(isinstance(x, str) and x.strip() for x in row[key]), key


@pytest.mark.parametrize("row", ROWS, ids=_label)
def test_answerability_consistent(row):
    unans = row["type"] == "unanswerable"
    assert row["answerable"] is (not unans)
    if unans:
        assert row["answer"] == ""
        assert row["doc_ids"] == []
        assert row["evidence"] == []
        assert row["must_include"] == []
    else:
        assert row["answer"].strip()
        assert row["doc_ids"]
        assert row["evidence"]


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("answerable")], ids=_label)
def test_evidence(row):
    doc_ids = row["doc_ids"]
    unknown = [d for d in doc_ids if d not in DOCS]
    assert not unknown, f"unknown doc ids {unknown}"
    assert len(set(doc_ids)) == len(doc_ids), "duplicate doc ids"
    outside = [d for d in DOCS if d not in doc_ids]
    covered = set()
    for ev in row["evidence"]:
        n = norm(ev)
        assert EVIDENCE_MIN <= len(n) <= EVIDENCE_MAX, f"evidence length {len(n)}: {ev!r}"
        inside = [d for d in doc_ids if n in DOCS[d]]
        assert inside, f"evidence not found in its documents: {ev!r}"
        covered.update(inside)
        leaks = [d for d in outside if n in DOCS[d]]
        assert not leaks, f"evidence {ev!r} also occurs in {leaks}"
    uncovered = [d for d in doc_ids if d not in covered]
    assert not uncovered, f"no evidence for {uncovered}"


@pytest.mark.parametrize("row", [r for r in ROWS if r.get("answerable")], ids=_label)
def test_must_include(row):
    for m in row["must_include"]:
        n = norm(m)
        assert n, "empty must_include"
        assert any(n in DOCS[d] for d in row["doc_ids"] if d in DOCS), \
            f"must_include {m!r} not in any of {row['doc_ids']}"
