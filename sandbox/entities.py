"""Telegram's HTML parse mode: validates tags and nesting like Telegram does, and yields text plus entities."""

from __future__ import annotations

import re

from sandbox.apierror import ApiError, bad_request

TAG_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "a": "text_link",
    "code": "code", "pre": "pre", "span": "spoiler", "tg-spoiler": "spoiler", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#[xX][0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-zA-Z]+);")
_TAG_NAME = re.compile(r"[a-zA-Z0-9-]*")
_ATTR = re.compile(r"\s*([a-zA-Z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _fail(detail: str) -> ApiError:
    return bad_request(f"can't parse entities: {detail}")


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8"))


def _attributes(raw: str, text: str, pos: int) -> dict[str, str]:
    attrs: dict[str, str] = {}
    i = 0
    while i < len(raw):
        if raw[i:].strip() in ("", "/"):
            break
        m = _ATTR.match(raw, i)
        if not m or m.end() == i:
            raise _fail(f"Expected equal sign in declaration of an attribute of the tag at byte offset "
                        f"{_byte_offset(text, pos)}")
        value = m.group(2) or ""
        if value[:1] in ("'", '"'):
            value = value[1:-1]
        attrs[m.group(1).lower()] = _decode_entities(value)
        i = m.end()
    return attrs


def _decode_entities(value: str) -> str:
    def one(m: re.Match) -> str:
        return _entity_char(m.group(1)) or m.group(0)
    return _ENTITY.sub(one, value)


def _entity_char(name: str) -> str | None:
    if name.startswith(("#x", "#X")):
        code = int(name[2:], 16)
    elif name.startswith("#"):
        code = int(name[1:])
    else:
        return NAMED.get(name)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_html(text: str) -> tuple[str, list[dict]]:
    """Parse Telegram HTML into (plain text, entities); raise 400 "can't parse entities" like Telegram."""
    out: list[str] = []
    out_len = 0
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "&":
            m = _ENTITY.match(text, i)
            ch = _entity_char(m.group(1)) if m else None
            if m and ch is not None:
                out.append(ch)
                out_len += utf16_len(ch)
                i = m.end()
                continue
        elif c == "<":
            end = text.find(">", i)
            if end < 0:
                raise _fail(f"Unclosed start tag at byte offset {_byte_offset(text, i)}")
            if text.startswith("</", i):
                name = text[i + 2:end].strip().lower()
                if not stack:
                    raise _fail(f"Unexpected end tag at byte offset {_byte_offset(text, i)}")
                open_name, start, attrs = stack.pop()
                if name != open_name:
                    raise _fail(f'Unmatched end tag at byte offset {_byte_offset(text, i)}, expected '
                                f'"</{open_name}>", found "</{name}>"')
                _close(open_name, start, out_len, attrs, entities)
                i = end + 1
                continue
            m = _TAG_NAME.match(text, i + 1)
            name = m.group(0).lower()
            if name not in TAG_ENTITY:
                raise _fail(f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, i)}')
            attrs = _attributes(text[m.end():end], text, i)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise _fail(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, i)}')
            if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
                raise _fail(f'Custom emoji entity must have an emoji-id at byte offset {_byte_offset(text, i)}')
            stack.append((name, out_len, attrs))
            i = end + 1
            continue
        out.append(c)
        out_len += utf16_len(c)
        i += 1
    if stack:
        raise _fail(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close(name: str, start: int, end: int, attrs: dict[str, str], entities: list[dict]) -> None:
    if end <= start:
        return
    kind = TAG_ENTITY[name]
    if name == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    entity: dict = {"offset": start, "length": end - start, "type": kind}
    if kind == "text_link":
        href = attrs.get("href", "")
        if not href:
            return
        if href.startswith("tg://user?id="):
            entity = {"offset": start, "length": end - start, "type": "text_mention",
                      "user": {"id": int(href.split("=", 1)[1] or 0), "is_bot": False, "first_name": ""}}
        else:
            entity["url"] = href
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs["emoji-id"]
    elif kind == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    entities.append(entity)


def strip_text(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Trim surrounding whitespace as Telegram does, shifting and clipping entity offsets."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    kept = []
    for e in entities:
        start = max(0, e["offset"] - lead)
        end = min(total, e["offset"] - lead + e["length"])
        if end > start:
            kept.append({**e, "offset": start, "length": end - start})
    return stripped, kept


def format_text(text: str, parse_mode: str | None) -> tuple[str, list[dict]]:
    """Apply parse_mode (HTML parsed strictly; Markdown modes taken literally) and trim like Telegram."""
    mode = (parse_mode or "").strip()
    if not mode:
        return strip_text(text, [])
    if mode.lower() == "html":
        return strip_text(*parse_html(text))
    if mode.lower() in ("markdown", "markdownv2"):
        return strip_text(text, [])
    raise bad_request(f"unsupported parse_mode \"{mode}\"")
