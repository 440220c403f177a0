"""Text for Telegram: Errbot Markdown → Telegram HTML, escaping, and splitting at Telegram's limits.

Lengths are counted the way Telegram does: visible characters after entity parsing, in UTF-16 code units.
"""

from __future__ import annotations

import html
import re
import threading
from html.parser import HTMLParser

from markdown import Markdown
from markdown.extensions.extra import ExtraExtension

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

_TAG_RE = re.compile(r"(<[^>]*>)")
_TAG_NAME_RE = re.compile(r"^<\s*(/?)\s*([a-zA-Z0-9-]+)")
_ATOM_RE = re.compile(r"\n|[^\S\n]+|[^\s]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_local = threading.local()


def escape(text: str) -> str:
    """Escape plain text for Telegram HTML (only &, < and > are special there)."""
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's message limits."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def visible_length(telegram_html: str) -> int:
    """Length of the text Telegram shows for this HTML (tags removed, entities decoded)."""
    return utf16_len(html.unescape(_TAG_RE.sub("", telegram_html)))


def _markdown() -> Markdown:
    converter = getattr(_local, "markdown", None)
    if converter is None:
        converter = Markdown(output_format="html", extensions=[ExtraExtension()])
        _local.markdown = converter
    return converter


_INLINE = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "del": "s",
    "strike": "s",
    "blockquote": "blockquote",
    "pre": "pre",
    "code": "code",
}
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = ("p", "div", "table", "blockquote", "pre", *_HEADINGS)
_TIDY_RE = re.compile(r"<(blockquote|pre)>\s+|\s+</(blockquote|pre)>")


def _tidy(match: re.Match) -> str:
    return f"<{match.group(1)}>" if match.group(1) else f"</{match.group(2)}>"


class _TelegramHTMLWriter(HTMLParser):
    """Rewrites the HTML python-markdown produces into the tag subset Telegram accepts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._open: list[str] = []
        self._lists: list[int] = []
        self._in_pre = 0
        self._item_start = False
        self._cells = 0

    def _text_so_far_ends_with(self, suffix: str) -> bool:
        return "".join(self.out[-3:]).endswith(suffix)

    def _new_line(self) -> None:
        if self.out and not self._text_so_far_ends_with("\n"):
            self.out.append("\n")

    def _block_gap(self) -> None:
        if self._item_start or not self.out:
            return
        if not self._text_so_far_ends_with("\n\n"):
            self.out.append("\n" if self._text_so_far_ends_with("\n") else "\n\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            if self._lists:
                if not self._item_start:
                    self._new_line()
            else:
                self._block_gap()
        if tag == "code" and self._in_pre:
            return
        if tag in _INLINE or tag in _HEADINGS:
            name = _INLINE.get(tag, "b")
            self._in_pre += tag == "pre"
            self.out.append(f"<{name}>")
            self._open.append(name)
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith(("http://", "https://", "tg://", "mailto:")):
                self.out.append(f'<a href="{html.escape(href, quote=True)}">')
                self._open.append("a")
            else:
                self._open.append("")
        elif tag in ("ul", "ol"):
            if self._lists:
                self._new_line()
            else:
                self._block_gap()
            self._lists.append(0 if tag == "ol" else -1)
        elif tag == "li":
            self._new_line()
            indent = "  " * max(len(self._lists) - 1, 0)
            if self._lists and self._lists[-1] >= 0:
                self._lists[-1] += 1
                self.out.append(f"{indent}{self._lists[-1]}. ")
            else:
                self.out.append(f"{indent}• ")
            self._item_start = True
            return
        elif tag == "br":
            self.out.append("\n")
        elif tag == "hr":
            self._block_gap()
            self.out.append("——————")
        elif tag == "tr":
            self._new_line()
            self._cells = 0
        elif tag in ("td", "th"):
            if self._cells:
                self.out.append(" | ")
            self._cells += 1
        elif tag == "img":
            found = dict(attrs)
            alt, src = found.get("alt") or "image", found.get("src") or ""
            if src.startswith(("http://", "https://")):
                self.out.append(f'<a href="{html.escape(src, quote=True)}">{escape(alt)}</a>')
            else:
                self.out.append(escape(alt))
        self._item_start = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "code" and self._in_pre:
            return
        if tag in _INLINE or tag in _HEADINGS or tag == "a":
            if self._open:
                name = self._open.pop()
                if name:
                    self.out.append(f"</{name}>")
            self._in_pre -= tag == "pre"
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
            if not self._lists:
                self.out.append("\n\n")
        if tag in _BLOCKS:
            self.out.append("\n" if self._lists else "\n\n")

    def handle_data(self, data: str) -> None:
        if not self._in_pre and not data.strip() and ("\n" in data or not self.out):
            return
        self._item_start = False
        self.out.append(escape(data))

    def result(self) -> str:
        while self._open:
            name = self._open.pop()
            if name:
                self.out.append(f"</{name}>")
        text = _TIDY_RE.sub(_tidy, "".join(self.out))
        return _BLANK_LINES_RE.sub("\n\n", text).strip()


def markdown_to_html(markdown_text: str) -> str:
    """Convert Errbot Markdown into Telegram HTML (bold, italic, code, pre, links, lists as bullets)."""
    converter = _markdown()
    try:
        rendered = converter.convert(markdown_text)
    finally:
        converter.reset()
    writer = _TelegramHTMLWriter()
    writer.feed(rendered)
    writer.close()
    return writer.result()


def to_telegram_html(text: str, text_format: str) -> str:
    """Render text given as "markdown", "html" (Telegram HTML, passed through) or "plain" (escaped)."""
    if text_format == "markdown":
        return markdown_to_html(text)
    if text_format == "html":
        return text
    if text_format == "plain":
        return escape(text)
    raise ValueError(f"text_format must be markdown, html or plain, not {text_format!r}")


def _tag_name(tag: str) -> tuple[str, bool]:
    match = _TAG_NAME_RE.match(tag)
    if not match:
        return "", False
    return match.group(2).lower(), bool(match.group(1))


def _atoms(telegram_html: str, limit: int) -> list[tuple[bool, str]]:
    """(is_tag, piece) atoms: tags as written, text as decoded words/spaces/newlines no longer than limit."""
    atoms: list[tuple[bool, str]] = []
    for piece in _TAG_RE.split(telegram_html):
        if not piece:
            continue
        if piece.startswith("<"):
            atoms.append((True, piece))
            continue
        for word in _ATOM_RE.findall(html.unescape(piece)):
            while utf16_len(word) > limit:
                cut = limit
                while utf16_len(word[:cut]) > limit:
                    cut -= 1
                atoms.append((False, word[:cut]))
                word = word[cut:]
            if word:
                atoms.append((False, word))
    return atoms


def _open_stack(start: list[tuple[str, str]], atoms: list[tuple[bool, str]]) -> list[tuple[str, str]]:
    stack = list(start)
    for is_tag, piece in atoms:
        if not is_tag:
            continue
        name, closing = _tag_name(piece)
        if closing:
            for index in range(len(stack) - 1, -1, -1):
                if stack[index][0] == name:
                    del stack[index]
                    break
        elif name:
            stack.append((name, piece))
    return stack


def _render_part(start: list[tuple[str, str]], atoms: list[tuple[bool, str]]) -> str:
    body = "".join(piece if is_tag else escape(piece) for is_tag, piece in atoms)
    end = _open_stack(start, atoms)
    return "".join(raw for _, raw in start) + body + "".join(f"</{name}>" for name, _ in reversed(end))


def split_html(telegram_html: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split Telegram HTML into parts of at most `limit` visible characters, preferring line then word
    boundaries, closing open tags at the end of a part and reopening them at the start of the next."""
    if visible_length(telegram_html) <= limit:
        return [telegram_html] if telegram_html.strip() else []
    parts: list[str] = []
    start: list[tuple[str, str]] = []
    current: list[tuple[bool, str]] = []
    length = 0

    def flush(upto: int, skip: int) -> None:
        nonlocal start, current, length
        head = current[:upto]
        if any(not is_tag and piece.strip() for is_tag, piece in head):
            parts.append(_render_part(start, head).strip())
        start = _open_stack(start, head)
        current = current[upto + skip :]
        length = sum(utf16_len(piece) for is_tag, piece in current if not is_tag)

    for is_tag, piece in _atoms(telegram_html, limit):
        if is_tag:
            current.append((is_tag, piece))
            continue
        size = utf16_len(piece)
        while length + size > limit:
            if not piece.strip():
                flush(len(current), 0)
                size = 0
                piece = ""
                break
            breaks = [i for i, (tag, p) in enumerate(current) if not tag and p == "\n"] or [
                i for i, (tag, p) in enumerate(current) if not tag and not p.strip()
            ]
            if breaks and breaks[-1] > 0:
                flush(breaks[-1], 1)
            else:
                flush(len(current), 0)
        if piece:
            current.append((False, piece))
            length += size
    if current:
        flush(len(current), 0)
    return parts
