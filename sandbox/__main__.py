"""`python -m sandbox --port 8081 --token TOKEN`: run the simulator as a process until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sandbox.core import Sandbox


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, serve, print the URL, and stop cleanly on a signal."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Telegram Bot API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", action="append", default=[], help="a valid bot token (repeatable)")
    parser.add_argument("--username", default="relay_test_bot", help="the bot's username")
    parser.add_argument("--enforce-limits", action="store_true", help="answer 429 past Telegram's pace")
    args = parser.parse_args(argv)
    sandbox = Sandbox(host=args.host, port=args.port, enforce_limits=args.enforce_limits)
    for token in args.token:
        sandbox.add_bot(token, username=args.username)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sandbox.start()
    print(f"Telegram sandbox listening on {sandbox.url} (chat page: {sandbox.url}/ )", flush=True)
    while not stop.wait(0.5):
        pass
    sandbox.stop()
    print("Telegram sandbox stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
