"""Stage 1: find files and decode them to text (txt, md, html, docx, pdf).

Encodings: BOM (UTF-8/16/32), UTF-8, GB18030 (superset of GBK/GB2312) and Big5 are tried; where more
than one decodes, the one whose text looks most like Chinese prose wins. Bytes that decode to nothing
sensible are refused with a reason, never passed on as mojibake.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .types import RawFile

SUPPORTED = {".txt": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html", ".docx": "docx", ".pdf": "pdf"}
# Limits that keep one hostile file from stalling an ingest for hours (embedding runs at a few chunks per
# second per core; the longest bundled reply is ~6,000 characters). Both are refused with a clear message.
MAX_BYTES = 20 * 1024 * 1024  # file size, any format (same as the chat's upload limit)
MAX_TEXT_CHARS = 1_000_000  # decoded text: ~2,800 chunks, already minutes of embedding


class LoadError(Exception):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class Discovered:
    files: list[Path]
    problems: list[LoadError]


def discover(paths: list[str | Path]) -> Discovered:
    """Expand files and directories (recursively, following no symlink loops) into supported files."""
    files: list[Path] = []
    problems: list[LoadError] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            problems.append(LoadError(p, "broken symlink or symlink loop" if p.is_symlink() else "no such file or directory"))
            continue
        if p.is_dir():
            visited_dirs: set[tuple[int, int]] = set()
            for root, dirs, names in os.walk(p, followlinks=True):
                try:
                    st = os.stat(root)
                except OSError as e:
                    problems.append(LoadError(root, f"unreadable directory ({e.strerror})"))
                    dirs[:] = []
                    continue
                key = (st.st_dev, st.st_ino)
                if key in visited_dirs:  # symlink loop
                    dirs[:] = []
                    continue
                visited_dirs.add(key)
                dirs.sort()
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    f = Path(root) / name
                    if f.suffix.lower() in SUPPORTED:
                        try:
                            rp = f.resolve()
                        except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
                            problems.append(LoadError(f, "symlink loop or unreadable link, not a file"))
                            continue
                        if rp not in seen:
                            seen.add(rp)
                            files.append(f)
            continue
        if p.suffix.lower() not in SUPPORTED:
            problems.append(LoadError(p, f"unsupported file type '{p.suffix or '(none)'}' (supported: {', '.join(sorted(SUPPORTED))})"))
            continue
        rp = p.resolve()
        if rp not in seen:
            seen.add(rp)
            files.append(p)
    return Discovered(files, problems)


@lru_cache(maxsize=1)
def _common_chars() -> frozenset[str]:
    """Characters of frequent words in jieba's dictionary: a cheap model of 'looks like Chinese'."""
    import jieba

    dict_path = Path(jieba.__file__).parent / "dict.txt"
    chars: dict[str, int] = {}
    with open(dict_path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split(" ")
            if len(parts) >= 2:
                freq = int(parts[1])
                for ch in parts[0]:
                    chars[ch] = chars.get(ch, 0) + freq
    top = sorted(chars, key=chars.get, reverse=True)[:4000]
    return frozenset(top)


@lru_cache(maxsize=1)
def _big5_common_chars() -> frozenset[str]:
    """The 5,401 'frequently used' hanzi of Big5 (0xA440-0xC67E): jieba's dictionary is simplified Chinese,
    so traditional text needs its own model of 'common'."""
    chars: set[str] = set()
    for lead in range(0xA4, 0xC7):
        for trail in (*range(0x40, 0x7F), *range(0xA1, 0xFF)):
            if (lead << 8 | trail) > 0xC67E:
                break
            try:
                chars.add(bytes((lead, trail)).decode("big5"))
            except UnicodeDecodeError:
                pass
    return frozenset(chars)


def _plausibility(text: str, extra: frozenset[str] = frozenset()) -> float:
    """Share of characters that are ASCII, common CJK or punctuation (1.0 = clean text)."""
    if not text:
        return 0.0
    common = _common_chars()
    good = 0
    for ch in text:
        if ch.isascii() or ch in common or ch in extra or unicodedata.category(ch)[0] in "PZ":
            good += 1
    return good / len(text)


_BOMS = [
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
]


def decode_bytes(data: bytes, path: str | Path = "<bytes>") -> tuple[str, str]:
    """Return (text, encoding) or raise LoadError."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc), enc
            except UnicodeDecodeError as e:
                raise LoadError(path, f"has a {enc} byte-order mark but does not decode ({e.reason})") from e
    if b"\x00" in data[:65536]:
        # UTF-16 without BOM is rare; NUL bytes otherwise mean a binary file
        for enc in ("utf-16-le", "utf-16-be"):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            if _plausibility(text[:4000]) > 0.9:
                return text, enc
        raise LoadError(path, "binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    candidates: list[tuple[float, str, str]] = []
    for enc in ("gb18030", "big5"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        extra = _big5_common_chars() if enc == "big5" else frozenset()
        candidates.append((_plausibility(text[:20000], extra), enc, text))
    if not candidates:
        raise LoadError(path, "not decodable as UTF-8, GB18030/GBK or Big5 (binary or unknown encoding)")
    score, enc, text = max(candidates)
    if score < 0.85:
        raise LoadError(path, f"decodes only as unlikely text (best guess {enc}, {score:.0%} plausible characters); refusing to index mojibake")
    return text, enc


def _html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "iframe", "svg", "nav", "footer", "header", "form", "button"]):
        tag.decompose()
    # block elements become line breaks so that headings stay on their own lines
    for br in soup.find_all("br"):
        br.replace_with("\n")
    blocks = {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "ul", "ol", "td", "th", "pre", "blockquote"}
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = soup.get_text()
    return re.sub(r"\n\s*\n+", "\n", text)


def _docx_to_text(data: bytes, path: Path) -> str:
    import docx  # python-docx

    try:
        d = docx.Document(io.BytesIO(data))
    except Exception as e:  # python-docx raises several zip/xml errors
        raise LoadError(path, f"not a readable .docx ({type(e).__name__}: {e})") from e
    lines = [p.text for p in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            lines.append(" | ".join(c.text.strip() for c in row.cells))
    return "\n".join(lines)


def _pdf_to_text(data: bytes, path: Path) -> str:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as e:  # pypdf raises many error types for broken files
        raise LoadError(path, f"not a readable PDF ({type(e).__name__}: {e})") from e
    text = "\n".join(pages)
    # PDF lines are broken at the page width: re-join lines that do not end a sentence or a heading
    return re.sub(r"(?<=[^\s。；;：:！？!?）)])\n(?=[^\s一二三四五六七八九十（(\d])", "", text)


def read_file(path: str | Path, doc_id: str | None = None) -> RawFile:
    p = Path(path)
    fmt = SUPPORTED.get(p.suffix.lower())
    if fmt is None:
        raise LoadError(p, f"unsupported file type '{p.suffix or '(none)'}'")
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise LoadError(p, f"file too large ({size / 2**20:.0f} MB > {MAX_BYTES / 2**20:.0f} MB); split it into separate files")
        data = p.read_bytes()
    except LoadError:
        raise
    except OSError as e:
        raise LoadError(p, f"cannot read ({e.strerror or e})") from e
    if not data.strip():
        raise LoadError(p, "empty file")
    encoding = "binary"
    if fmt == "docx":
        text = _docx_to_text(data, p)
    elif fmt == "pdf":
        text = _pdf_to_text(data, p)
    else:
        text, encoding = decode_bytes(data, p)
        if fmt == "html":
            text = _html_to_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    if not text.strip() and fmt in ("txt", "md"):
        raise LoadError(p, "empty file (only whitespace)")
    if not re.search(r"[\w\u4e00-\u9fff]", text):
        raise LoadError(p, "contains no text after decoding")
    if len(text) > MAX_TEXT_CHARS:
        raise LoadError(p, f"text too long ({len(text):,} characters > {MAX_TEXT_CHARS:,}); split it into separate files")
    return RawFile(
        path=str(p),
        doc_id=doc_id or p.stem,
        text=text,
        encoding=encoding,
        fmt=fmt,
        content_hash=hashlib.sha256(data).hexdigest(),
    )


def iter_files(paths: list[str | Path]) -> Iterator[RawFile | LoadError]:
    found = discover(paths)
    yield from found.problems
    for f in found.files:
        try:
            yield read_file(f)
        except LoadError as e:
            yield e
