"""Wires the relay together: the store, the delivery workers, the API, inbound mapping and file links.

The Relay plugin creates one RelayService on activation and stops it on deactivation; every other module
receives what it needs from here, so each can be read (and tested) alone.
"""

from __future__ import annotations

import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from smoochrelay import smooch
from smoochrelay.api import Channel, RelayApi
from smoochrelay.events import EventFanout
from smoochrelay.files import FileLinks
from smoochrelay.inbound import InboundRelay
from smoochrelay.outbound import render
from smoochrelay.outbox import SendDispatcher
from smoochrelay.payments import Payments
from smoochrelay.settings import RelaySettings
from smoochrelay.store import RelayStore, WebhookJob
from smoochrelay.webhooks import WebhookDispatcher
from tgbackend.outgoing import OutgoingMessage

log = logging.getLogger(__name__)

DATABASE_NAME = "relay.sqlite3"


class RelayService:
    """The running relay: owns the database and the worker threads."""

    def __init__(self, bot: Any, bot_config: Any) -> None:
        self.bot = bot
        self.settings = RelaySettings.from_config(bot_config)
        self.store = RelayStore(os.path.join(self.settings.data_dir, DATABASE_NAME))
        self.app_id = self.settings.app_id or self.store.setting("app_id", create=smooch.new_id)
        if self.settings.api_key_id and self.settings.api_key_secret:
            self.store.ensure_api_key(self.settings.api_key_id, self.settings.api_key_secret, "environment")
        link_secret = self.store.setting("file_link_secret", create=lambda: secrets.token_urlsafe(32))
        self.links = FileLinks(link_secret, self.settings.public_url, self.settings.file_link_ttl)
        self.fanout = EventFanout(self.store, self.app_id)
        self.webhooks = WebhookDispatcher(self.store, timeout=self.settings.webhook_timeout,
                                          max_attempts=self.settings.webhook_attempts)
        self.sender = SendDispatcher(self.store, send=self._send, on_sent=self._on_sent,
                                     on_failed=self._on_failed, max_age=self.settings.send_max_age)
        self._notices = ThreadPoolExecutor(max_workers=2, thread_name_prefix="relay-notice")
        self.inbound = InboundRelay(
            self.store, self.fanout, self.links, file_size_limit=bot.file_size_limit,
            bot_prefix=self.settings.bot_prefix,
            notify_user=self._notify_user, big_file_notice=self.settings.big_file_notice,
        )
        channel = Channel(set_token=bot.set_token, clear_token=bot.clear_token,
                          status=bot.telegram_status, send_typing=bot.send_typing)
        self.payments = Payments(self.store, self.settings, self.fanout, app_id=self.app_id,
                                 notify_user=self._notify_user)
        self.api = RelayApi(self.store, self.settings, self.app_id, self.fanout, channel,
                            prepare_buy=self.payments.prepare_buy)

    def start(self) -> None:
        """Start the delivery workers; queued work from before a restart resumes."""
        self.webhooks.start()
        self.sender.start()

    def stop(self) -> None:
        """Stop the workers and close the database; undelivered jobs stay queued for the next start."""
        self.sender.stop()
        self.webhooks.stop()
        self._notices.shutdown(wait=False, cancel_futures=True)
        self.store.close()

    def _send(self, job: dict) -> list[int]:
        """Send one queued appMaker message to its Telegram chat; typed errors go back to the dispatcher."""
        ids: list[int] = []
        for part in render(job["message"]):
            ids.extend(self.bot.send_outgoing(job["chat_id"], part))
        return ids

    def _on_sent(self, job: dict, telegram_ids: list[int]) -> list[WebhookJob]:
        """Telegram accepted the message: remember its ids and fire message:delivery:channel."""
        message = job["message"]
        self.store.set_telegram_message_ids(message["_id"], telegram_ids)
        app_user = self.store.get_app_user(job["app_user_id"])
        if app_user is None:
            return []
        return self.fanout.jobs("message:delivery:channel", app_user,
                                **smooch.delivery_channel_event(message))

    def _on_failed(self, job: dict, error: Exception) -> list[WebhookJob]:
        """The message cannot be delivered: fire message:delivery:failure with a Smooch error code."""
        message = job["message"]
        code = getattr(error, "code", "unavailable")
        app_user = self.store.get_app_user(job["app_user_id"])
        if app_user is None:
            return []
        if code == "blocked":
            self.store.set_user_blocked(app_user["_id"], True)
            self.inbound.forget_user(app_user["telegram_user_id"])
        log.warning("Message %s to appUser %s failed for good: %s", message["_id"], app_user["_id"], code)
        return self.fanout.jobs("message:delivery:failure", app_user,
                                **smooch.delivery_failure_event(message, code, str(error)))

    def _notify_user(self, chat_id: int, text: str) -> None:
        """A short courtesy notice to the Telegram user (e.g. a file too big to pass on); best effort."""

        def send() -> None:
            try:
                self.bot.send_outgoing(chat_id, OutgoingMessage(text=text, text_format="plain"))
            except Exception as exc:
                log.warning("Could not send a notice to chat %s: %s", chat_id, getattr(exc, "code", type(exc)))

        self._notices.submit(send)
