"""Stage 3: cut a parsed Document into retrieval-sized Chunks along its outline.

One chunk per outline item (一、 / (一) / 1. / 一是…). Items longer than `max_chars` are split at sentence
ends (。；！？), never mid-sentence (a single sentence longer than the limit is split at commas, and only
a comma-less run is cut hard). A short intro (the heading sentence of an item that has sub-items) is
prepended to its first sub-item, and short neighbouring siblings are merged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .config import ChunkerConfig
from .parser import split_sentences
from .types import Chunk, Document, Section


@dataclass
class _Unit:
    text: str
    path: tuple[str, ...]


def _split_long_sentence(sent: str, max_chars: int) -> list[str]:
    if len(sent) <= max_chars:
        return [sent]
    parts = [m.group(0) for m in re.finditer(r"[^，,、：:]*[，,、：:]?", sent) if m.group(0)]
    out: list[str] = []
    buf = ""
    for part in parts:
        if len(part) > max_chars:  # no punctuation at all: hard cut (the only cut inside a clause)
            if buf:
                out.append(buf)
                buf = ""
            # by offsets, not by re-slicing the rest each time: a long comma-less text stays linear
            cut = len(part) - (len(part) - 1) % max_chars - 1
            out.extend(part[i : i + max_chars] for i in range(0, cut, max_chars))
            part = part[cut:]
        if len(buf) + len(part) > max_chars and buf:
            out.append(buf)
            buf = ""
        buf += part
    if buf:
        out.append(buf)
    return out


def pack_sentences(text: str, max_chars: int) -> list[str]:
    """Greedy packing of whole sentences into pieces of at most max_chars; ''.join(result) == text."""
    if len(text) <= max_chars:
        return [text]
    sents: list[str] = []
    for s in split_sentences(text):
        sents.extend(_split_long_sentence(s, max_chars))
    pieces: list[str] = []
    buf = ""
    for s in sents:
        if buf and len(buf) + len(s) > max_chars:
            pieces.append(buf)
            buf = ""
        buf += s
    if buf:
        pieces.append(buf)
    # balance: avoid a tiny tail piece by moving sentences from the previous piece
    if len(pieces) >= 2 and len(pieces[-1]) < max_chars // 4:
        prev_sents = split_sentences(pieces[-2])
        while len(prev_sents) > 1 and len(pieces[-1]) + len(prev_sents[-1]) <= max_chars and len(pieces[-1]) < len("".join(prev_sents[:-1])):
            pieces[-1] = prev_sents.pop() + pieces[-1]
        pieces[-2] = "".join(prev_sents)
    return pieces


def _prepend(head: str, unit: _Unit, max_chars: int) -> list[_Unit]:
    """Put a heading line in front of a unit, moving sentences to a second unit if it would grow too long."""
    if len(head) + 1 + len(unit.text) <= max_chars:
        return [_Unit(f"{head}\n{unit.text}", unit.path)]
    # whole sentences, line by line (split_sentences works on one line: keep the line breaks ourselves)
    lines = unit.text.split("\n")
    sents: list[str] = []
    for i, ln in enumerate(lines):
        parts = split_sentences(ln) or [ln]
        if i < len(lines) - 1:
            parts[-1] += "\n"
        sents.extend(parts)
    first = ""
    while sents and len(head) + 1 + len((first + sents[0]).rstrip("\n")) <= max_chars:
        first += sents.pop(0)
    first, rest = first.rstrip("\n"), "".join(sents).strip("\n")
    out = [_Unit(f"{head}\n{first}" if first else head, unit.path)]
    if rest:
        out.append(_Unit(rest, unit.path))
    return out


def _units(sections: list[Section], path: tuple[str, ...], cfg: ChunkerConfig) -> list[_Unit]:
    out: list[_Unit] = []
    for sec in sections:
        p = path + ((sec.label,) if sec.label else ())
        own = sec.text.strip()
        child_units = _units(sec.children, p, cfg)
        head = ""
        if sec.heading:
            # a heading that stands on its own line is text too: it opens the section's first chunk
            if own:
                head = sec.heading
            elif child_units:
                child_units[0:1] = _prepend(sec.heading, child_units[0], cfg.max_chars)
            else:
                own = sec.heading
        if own:
            lines = [ln for ln in own.split("\n") if ln.strip()]
            own_units = [_Unit(piece, p) for ln in lines for piece in pack_sentences(ln, cfg.max_chars)]
            if head:  # the heading stays with the first piece of its text, never a unit of its own
                own_units[0:1] = _prepend(head, own_units[0], cfg.max_chars)
                own = f"{head}\n{own}"
            # a short intro goes with the first sub-item rather than standing alone
            if child_units and len(own_units) == 1 and len(own) < cfg.min_chars * 2 and len(own) + len(child_units[0].text) + 1 <= cfg.max_chars:
                child_units[0] = _Unit(own + "\n" + child_units[0].text, child_units[0].path)
                own_units = []
            out.extend(own_units)
        out.extend(child_units)
    return out


def _merge_short(units: list[_Unit], cfg: ChunkerConfig) -> list[_Unit]:
    merged: list[_Unit] = []
    for u in units:
        if merged:
            prev = merged[-1]
            # siblings under a common parent (never two top-level sections: the merged unit would have no path of its own)
            same_parent = prev.path == u.path or (prev.path[:-1] == u.path[:-1] and len(u.path) > 1)
            # a unit opening with its own heading line (a last item cut off after its heading: (三)降低企业) keeps
            # its path: merged into a sibling, the heading would sit in a chunk of another section
            opens_with_heading = prev.path != u.path and bool(u.path) and u.text.split("\n", 1)[0].strip() == u.path[-1].strip()
            if same_parent and not opens_with_heading and (len(prev.text) < cfg.min_chars or len(u.text) < cfg.min_chars) and len(prev.text) + len(u.text) + 1 <= cfg.max_chars:
                common = prev.path if prev.path == u.path else prev.path[:-1]
                merged[-1] = _Unit(prev.text + "\n" + u.text, common or prev.path)
                continue
        merged.append(u)
    return merged


def chunk_document(doc: Document, cfg: ChunkerConfig | None = None) -> list[Chunk]:
    cfg = cfg or ChunkerConfig()
    units = _merge_short(_units(doc.sections, (), cfg), cfg)
    m = doc.meta
    chunks: list[Chunk] = []
    for i, u in enumerate(units):
        if not u.text.strip():
            continue
        chunks.append(
            Chunk(
                chunk_id=f"{m.doc_id}#{len(chunks)}",
                doc_id=m.doc_id,
                ordinal=len(chunks),
                text=u.text.strip(),
                section_path=list(u.path),
                city=m.city,
                title=m.title,
                issuer=m.issuer,
                date=m.date,
            )
        )
    return chunks
