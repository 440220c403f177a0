"""The baseline: the smallest relay a user might write instead of ours.

python-telegram-bot polling, and `requests` posting each update to the webhook. No Errbot, no storage,
no signature, no retries: an update is acknowledged on the next poll whether or not the POST worked.

    python -m bench.baseline --token T --api-url http://127.0.0.1:PORT --webhook http://127.0.0.1:PORT/hook
"""

from __future__ import annotations

import argparse
import logging
import sys

import requests
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--token", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--webhook", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    session = requests.Session()  # keep-alive: the one optimisation everybody knows

    async def relay(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        session.post(args.webhook, json=update.to_dict(), timeout=20)

    app = (Application.builder().token(args.token).base_url(f"{args.api_url}/bot")
           .base_file_url(f"{args.api_url}/file/bot").build())
    app.add_handler(MessageHandler(filters.ALL, relay))
    app.run_polling(poll_interval=0.0, timeout=10, allowed_updates=Update.ALL_TYPES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
