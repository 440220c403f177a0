"""Pure parts of the backend: rendering and splitting, pacing, update parsing, redaction."""

from __future__ import annotations

import logging

import pytest

from tgbackend.pacing import Pacer
from tgbackend.redact import MASK, RedactingFilter, redact, register_secret
from tgbackend.rendering import markdown_to_html, split_html, to_telegram_html, visible_length
from tgbackend.updates import IgnoredUpdate, MalformedUpdate, parse_update


def test_markdown_to_telegram_html_escapes_and_maps_tags():
    html = markdown_to_html("**bold** _it_ `a<b>` & [link](https://e.org/?a=1&b=2)\n\n- one\n- two")
    assert html == ('<b>bold</b> <i>it</i> <code>a&lt;b&gt;</code> &amp; '
                    '<a href="https://e.org/?a=1&amp;b=2">link</a>\n\n• one\n• two')
    assert to_telegram_html("1 < 2 & <b>", "plain") == "1 &lt; 2 &amp; &lt;b&gt;"
    assert to_telegram_html("<b>x</b>", "html") == "<b>x</b>"
    with pytest.raises(ValueError, match="text_format"):
        to_telegram_html("x", "bbcode")


def test_split_counts_visible_utf16_and_reopens_tags():
    text = "<b>" + "&amp;" * 5000 + "</b>"
    parts = split_html(text)
    assert [visible_length(p) for p in parts] == [4096, 904]
    assert all(p.startswith("<b>") and p.endswith("</b>") for p in parts)
    emoji = "😀" * 3000
    assert [visible_length(p) for p in split_html(emoji)] == [4096, 1904]
    lines = "\n".join(["x" * 100] * 100)
    assert all(p.endswith("x") and p.startswith("x") for p in split_html(lines))
    assert split_html("short") == ["short"]
    nested = '<a href="https://e.org">' + "word " * 1000 + "</a><i>" + "more " * 1000 + "</i>"
    parts = split_html(nested)
    assert parts[1].startswith('<a href="https://e.org">') and "</a><i>" in parts[1]


def test_pacing_per_chat_and_overall():
    pacer = Pacer(overall_rate=30, overall_burst=30, chat_rate=1, chat_burst=3)
    now = 1000.0
    waits = [pacer.reserve(1, now) for _ in range(5)]
    assert waits[:3] == [0, 0, 0] and waits[3] == pytest.approx(1.0) and waits[4] == pytest.approx(2.0)
    other = Pacer(overall_rate=30, overall_burst=30, chat_rate=1, chat_burst=3)
    waits = [other.reserve(chat, now) for chat in range(60)]
    assert max(waits[:30]) == 0 and waits[59] == pytest.approx(1.0, abs=0.01)
    # The defaults never put more than 30 sends in any 1 s window (Telegram's overall limit), even when any
    # one send goes out 30 ms after its slot (a busy process): the booked slots leave room for it.
    default = Pacer()
    slots = sorted(now + default.reserve(chat, now) for chat in range(120))
    assert max(sum(1 for t in slots[i:] if t - start < 1.0) for i, start in enumerate(slots)) <= 29
    for late in range(len(slots)):
        shifted = sorted(t + (0.03 if i == late else 0.0) for i, t in enumerate(slots))
        assert max(sum(1 for t in shifted[i:] if t - start < 1.0) for i, start in enumerate(shifted)) <= 30
    assert Pacer(enabled=False).reserve(1, now) == 0


def test_parse_update_rejects_and_ignores():
    with pytest.raises(MalformedUpdate):
        parse_update({"message": {}})
    with pytest.raises(MalformedUpdate):
        parse_update({"update_id": 1, "message": {"chat": {"id": 5, "type": "private"}, "from": {"id": 5},
                                                  "poll": {}}})
    with pytest.raises(IgnoredUpdate):
        parse_update({"update_id": 1, "channel_post": {}})
    with pytest.raises(IgnoredUpdate):
        parse_update({"update_id": 1, "message": {"chat": {"id": -5, "type": "group"}, "from": {"id": 5},
                                                  "text": "x"}})


def test_redaction_of_registered_and_token_shaped_secrets():
    register_secret("secret-value-123456")
    assert redact("a secret-value-123456 b") == f"a {MASK} b"
    assert MASK in redact("https://api.telegram.org/file/bot123456:AAbcdefghijklmnopqrstuvwxyz0123456789/x")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("secret-value-123456",), None)
    RedactingFilter().filter(record)
    assert record.getMessage() == f"token {MASK}"
