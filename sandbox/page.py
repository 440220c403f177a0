"""The chat page served at GET / (a single self-contained HTML file next to this module, read once)."""

from __future__ import annotations

from pathlib import Path

PAGE: bytes = (Path(__file__).with_name("chat.html")).read_bytes()
