"""A local Telegram Bot API simulator: `from sandbox import Sandbox` (CONTRACTS §7), or `python -m sandbox`."""

from sandbox.core import Sandbox

__all__ = ["Sandbox"]
