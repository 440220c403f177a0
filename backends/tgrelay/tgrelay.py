"""Errbot backend "TGRelay": Telegram private chats over python-telegram-bot 22 (CONTRACTS §1-§3).

PTB runs on its own asyncio loop thread (tgbackend.client); Errbot's thread runs the lossless polling
loop (tgbackend.polling) and dispatches each update synchronously and strictly to the plugins.
"""

from __future__ import annotations

import fnmatch
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import errbot.core_plugins
import httpx
from errbot.backends.base import ONLINE, Card, Identifier, Message, Room, Stream
from errbot.core import ErrBot

from tgbackend.affinity import pin_process
from tgbackend.client import SETUP_HINT, BotInfo, RelayBot, TelegramClient
from tgbackend.errors import (
    InvalidTokenError,
    NotConnectedError,
    RoomsNotSupportedError,
    TelegramError,
)
from tgbackend.files import FILE_SIZE_LIMIT, FileStream, open_file
from tgbackend.identifiers import TelegramPerson, parse_identifier
from tgbackend.keyboards import CallbackStore, build_markup
from tgbackend.outgoing import InlineButton, OutgoingMessage
from tgbackend.pacing import Pacer
from tgbackend.polling import OffsetStore, Poller, PollingStatus
from tgbackend.redact import install_log_redaction, redact, register_secret
from tgbackend.rendering import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    escape,
    split_html,
    to_telegram_html,
    visible_length,
)
from tgbackend.settings import read_settings
from tgbackend.updates import IgnoredUpdate, MalformedUpdate, parse_update
from tgbackend.webserver import Webserver, WebserverSettings

log = logging.getLogger("errbot.backends.tgrelay")
_STORED_TOKEN_KEY = "token"  # noqa: S105 (a storage key, not a secret)
_MEDIA_SENDERS = {
    "photo": ("send_photo", "photo"),
    "document": ("send_document", "document"),
    "audio": ("send_audio", "audio"),
    "video": ("send_video", "video"),
}


class TGRelayBackend(ErrBot):
    """The bot: lifecycle, routing of incoming updates, and the channel API plugins call (CONTRACTS §2)."""

    MSG_ERROR_OCCURRED = "Sorry, something went wrong on our side. Please try again in a moment."

    def __init__(self, config: Any) -> None:
        chosen_limit = getattr(config, "MESSAGE_SIZE_LIMIT", None)
        super().__init__(config)  # sets Errbot's historical 10000 default, which Telegram cannot take
        config.MESSAGE_SIZE_LIMIT = chosen_limit
        install_log_redaction()
        self.settings = read_settings(config)
        pin_process(self.settings.cpu_affinity)  # before the bot starts its own threads
        register_secret(self.settings.token)
        self.bot_identifier = TelegramPerson(0, username=None, first_name="(not connected)")
        self.set_message_size_limit(TEXT_LIMIT, TEXT_LIMIT)
        self._admin_exact = {a for a in self.settings.admins if not any(c in a for c in "*?[")}
        self._admin_patterns = [a for a in self.settings.admins if a not in self._admin_exact]
        self._storage_lock = threading.Lock()
        self._status = PollingStatus()
        self._pacer = Pacer(enabled=self.settings.pacing)
        self._client: TelegramClient | None = None
        self._http: httpx.Client | None = None
        self._callbacks: CallbackStore | None = None
        self._poller: Poller | None = None
        self._pending_token: str | None = None
        self._started = False
        self._shutdown_requested = threading.Event()
        self._webserver: Webserver | None = None
        self._webserver_error: str | None = None

    # --- Errbot lifecycle ---------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "tgrelay"

    def serve_once(self) -> bool:
        """Connect (if a token is known), activate plugins once, then poll until shutdown. True = shut down."""
        try:
            if not self._started:
                self._start()
            if self._shutdown_requested.is_set():
                return True
            assert self._poller is not None
            self._poller.run()
            return True
        except KeyboardInterrupt:
            return True

    def _start(self) -> None:
        self._stop_on_sigterm()
        self._client = TelegramClient(self.settings.api_url, on_revoked=self._on_token_revoked)
        self._http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=False)
        self._callbacks = CallbackStore(self, self._storage_lock)
        self._poller = Poller(
            self._client,
            OffsetStore(self, self._storage_lock),
            self._handle_update,
            self._status,
            poll_timeout=self.settings.poll_timeout,
            reconnect=self._reconnect,
        )
        if self._shutdown_requested.is_set():
            self._poller.request_stop()
        with self._storage_lock:
            stored = self.get(_STORED_TOKEN_KEY)
        register_secret(stored)
        self._pending_token = stored or self.settings.token
        if self._pending_token is None:
            self._status.last_error = "no Telegram token"
            log.error(
                "No Telegram token is configured: %s. Plugins and the web API run meanwhile.", SETUP_HINT
            )
        else:
            self._reconnect()
        webserver_config = self.settings.webserver_config
        if webserver_config:  # Errbot's own Webserver plugin, if loaded, must not take the same port
            self.plugin_manager.set_plugin_configuration("Webserver", None)
        self._started = True
        self.connect_callback()
        if webserver_config:
            self._start_webserver(dict(webserver_config))
        self.reset_reconnection_count()

    def _start_webserver(self, config: dict) -> None:
        """Serve Errbot's web app (every plugin's routes) from WEBSERVER_CONFIG, once all plugins are active.

        Flask refuses new routes after it has served a request, and Errbot mounts a plugin's routes after
        activating it; so the server starts only now, and a request can never arrive before its route.
        """
        try:
            settings = WebserverSettings.from_config(config)
            self._webserver = Webserver(errbot.core_plugins.flask_app, settings)
        except Exception as problem:  # a bad setting, a taken port, an unresolvable host...
            self._webserver_error = f"not serving HTTP on {config.get('HOST')}:{config.get('PORT')}: {problem}"
            log.error("The web server did not start, so the HTTP API is down: %s", self._webserver_error)
            return
        self._webserver.start()

    def _reconnect(self) -> bool:
        """Try the pending token (startup or a network failure); True once connected."""
        token = self._pending_token
        if token is None or self._client is None or self._status.token_refused:
            return False
        try:
            info = self._client.connect(token)
        except InvalidTokenError:
            self._status.token_refused = True
            self._status.last_error = "Telegram refused the token"
            log.error("Telegram refused the configured bot token (revoked or mistyped): %s.", SETUP_HINT)
            return False
        except TelegramError as exc:
            self._status.last_error = str(exc)
            log.warning("Cannot reach Telegram at %s yet (%s); retrying.", self.settings.api_url, exc)
            return False
        self._on_connected(info)
        return True

    def _on_connected(self, info: BotInfo) -> None:
        self.bot_identifier = TelegramPerson(info.id, username=info.username, first_name=info.username)
        self._status.token_refused = False
        self._status.last_error = None
        log.info("Connected to Telegram as @%s (%s)", info.username, self.settings.api_url)

    def _on_token_revoked(self) -> None:
        self._status.token_refused = True
        self._status.last_error = "Telegram rejected the token (revoked?)"
        log.error("Telegram now rejects the bot token (revoked?): %s.", SETUP_HINT)

    def _stop_on_sigterm(self) -> None:
        """systemd and `docker stop` send SIGTERM: stop as cleanly as on Ctrl-C (workers joined, databases closed).

        Only the main thread may install signal handlers; an embedding program keeps its own."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_sigterm(signum: int, frame: object) -> None:
            log.info("SIGTERM received: shutting down.")
            self.request_shutdown()

        signal.signal(signal.SIGTERM, on_sigterm)

    def request_shutdown(self) -> None:
        """Ask serve_once to return (tests and embedders; SIGINT does the same in the CLI)."""
        self._shutdown_requested.set()
        if self._poller is not None:
            self._poller.request_stop()

    def shutdown(self) -> None:
        """Stop polling, deactivate plugins (their workers finish and their databases close), close the PTB
        loop and HTTP clients, then Errbot's own shutdown.

        Errbot's shutdown alone closes storage but leaves plugins active, so their threads (the relay's
        delivery workers, the Webserver) would keep the process alive after Ctrl-C or SIGTERM."""
        self.request_shutdown()
        try:
            if self._webserver is not None:
                self._webserver.stop()  # no new requests while plugins deactivate
            if self._started:
                self.disconnect_callback()
            super().shutdown()
        finally:
            if self._client is not None:
                self._client.close()
            if self._http is not None:
                self._http.close()

    # --- incoming -----------------------------------------------------------------------------------
    def _handle_update(self, update: dict, redelivered: bool) -> None:
        """Route one raw update (CONTRACTS §1); plugin exceptions propagate so the batch is retried."""
        try:
            incoming = parse_update(update)
        except IgnoredUpdate as reason:
            log.debug("Ignoring update %s: %s", update.get("update_id"), reason)
            return
        except MalformedUpdate as problem:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            log.warning("Skipping malformed update %s: %s", update_id, problem)
            return
        extras = incoming.extras
        if incoming.callback_query_id is not None:
            self._answer_callback(incoming.callback_query_id, redelivered)
            assert self._callbacks is not None
            extras["callback_payload"] = self._callbacks.resolve(incoming.callback_data)
            if extras["callback_payload"] is None:
                log.warning(
                    "Button press from %s carried callback data we never issued (%d bytes); relayed with no payload",
                    incoming.user["id"],
                    len(incoming.callback_data or ""),
                )
        user = incoming.user
        sender = TelegramPerson(user["id"], user["username"], user["first_name"], user["last_name"])
        from_admin = self.is_admin(sender)
        extras["from_admin"] = from_admin
        extras["redelivered"] = redelivered
        message = Message(incoming.body, frm=sender, to=self.bot_identifier, extras=extras)
        if from_admin and not self.process_message(message):
            return
        for plugin in self.plugin_manager.get_all_active_plugins():
            plugin.callback_message(message)

    def _answer_callback(self, query_id: str, redelivered: bool) -> None:
        bot = self._client.bot if self._client is not None else None
        if bot is None or redelivered:
            return
        self._client.submit(bot.answer_callback_query(query_id))  # type: ignore[union-attr]

    def is_admin(self, identifier: Identifier) -> bool:
        """True when the identifier's user id matches BOT_ADMINS."""
        key = getattr(identifier, "aclattr", None) or str(identifier)
        return key in self._admin_exact or any(fnmatch.fnmatchcase(key, p) for p in self._admin_patterns)

    # --- the channel API (CONTRACTS §2) -------------------------------------------------------------
    @property
    def bot_info(self) -> BotInfo | None:
        return self._client.info if self._client is not None else None

    @property
    def file_size_limit(self) -> int:
        return FILE_SIZE_LIMIT

    def _require_client(self) -> TelegramClient:
        if self._client is None:
            raise NotConnectedError("the backend has not started yet; retry in a moment")
        return self._client

    def _send(self, chat_id: int, operation: Callable[[RelayBot], Any]) -> int:
        client = self._require_client()
        sent = client.call(operation, before_attempt=lambda: self._pacer.wait(chat_id))
        return sent if isinstance(sent, int) else sent.message_id

    def send_outgoing(self, chat_id: int, message: OutgoingMessage) -> list[int]:
        """Send one logical message (maybe several Telegram messages); return their ids in order.

        Raises tgbackend.errors.TelegramError subclasses (see CONTRACTS §2)."""
        message.validate()
        self._require_client()
        assert self._callbacks is not None
        markup = build_markup(message, self._callbacks)
        body = to_telegram_html(message.text, message.text_format) if message.text else ""
        quiet = message.disable_notification
        steps: list[Callable[[Any], Callable[[RelayBot], Any]]] = []
        texts = split_html(body) if body else []
        if message.media_kind is not None:
            caption = None
            if body and visible_length(body) <= CAPTION_LIMIT:
                caption, texts = body, []
            method, argument = _MEDIA_SENDERS[message.media_kind]
            media = message.media_url if message.media_url is not None else message.media_bytes

            def media_step(reply_markup: Any) -> Callable[[RelayBot], Any]:
                def operation(bot: RelayBot) -> Any:
                    options: dict[str, Any] = {
                        argument: media,
                        "caption": caption,
                        "reply_markup": reply_markup,
                        "disable_notification": quiet,
                    }
                    if caption:
                        options["parse_mode"] = "HTML"
                    if message.media_bytes is not None:
                        options["filename"] = message.filename or message.media_kind
                    return getattr(bot, method)(chat_id, **options)

                return operation

            steps.append(media_step)
        for part in texts:
            steps.append(_text_step(chat_id, part, quiet))
        if message.location is not None:
            latitude, longitude = message.location

            def location_step(reply_markup: Any) -> Callable[[RelayBot], Any]:
                return lambda bot: bot.send_location(
                    chat_id,
                    latitude=latitude,
                    longitude=longitude,
                    reply_markup=reply_markup,
                    disable_notification=quiet,
                )

            steps.append(location_step)
        ids: list[int] = []
        for index, step in enumerate(steps):
            ids.append(self._send(chat_id, step(markup if index == len(steps) - 1 else None)))
        return ids

    def send_typing(self, chat_id: int) -> None:
        """Show "typing…" in the chat for up to 5 seconds."""
        self._require_client().call(lambda bot: bot.send_chat_action(chat_id, "typing"), attempts=2)

    def delete_message(self, chat_id: int, message_id: int) -> None:
        """Delete a message in the chat (the bot's own, or the user's within 48 h)."""
        self._require_client().call(lambda bot: bot.delete_message(chat_id, message_id))

    def set_token(self, token: str) -> BotInfo:
        """Check the token with getMe, store it, and switch to it without a restart.

        Raises InvalidTokenError (the old connection stays) or TelegramUnavailableError."""
        token = (token or "").strip()
        if not token or any(c.isspace() for c in token):
            raise InvalidTokenError("that is not a bot token: it looks like 123456789:AA… (from @BotFather)")
        register_secret(token)
        info = self._require_client().connect(token)
        with self._storage_lock:
            self[_STORED_TOKEN_KEY] = token
        self._pending_token = token
        self._on_connected(info)
        if self._poller is not None:
            self._poller.wake.set()
        return info

    def clear_token(self) -> None:
        """Forget the stored token and disconnect; polling and sends wait until a token is set again.

        A TELEGRAM_TOKEN in the environment is used again at the next start."""
        with self._storage_lock:
            if _STORED_TOKEN_KEY in self:
                del self[_STORED_TOKEN_KEY]
        self._pending_token = None
        self._require_client().disconnect()
        self._status.last_error = "disconnected: no Telegram token (set one with !telegram token)"
        log.warning("Telegram token removed; the bot is disconnected until a token is set again.")

    def telegram_status(self) -> dict:
        """connected, username, link, api_url, updates_received, last_error (never the token), and webserver:
        where the HTTP server listens, or why it does not."""
        info = self.bot_info
        return {
            "connected": info is not None,
            "token_configured": self._pending_token is not None,
            "username": info.username if info else None,
            "link": info.link if info else None,
            "api_url": self.settings.api_url,
            "updates_received": self._status.updates_received,
            "last_error": redact(self._status.last_error) if self._status.last_error else None,
            "webserver": self._webserver_status(),
        }

    def _webserver_status(self) -> str:
        if self._webserver is not None:
            return f"listening on {self._webserver.settings.host}:{self._webserver.port}"
        return self._webserver_error or "not configured (WEBSERVER_CONFIG is unset)"

    def open_file(self, file_id: str) -> FileStream:
        """Stream a file from Telegram; raises FileTooBigError, FileGoneError (URL never exposed)."""
        client = self._require_client()
        assert self._http is not None
        return open_file(client, self._http, file_id, FILE_SIZE_LIMIT)

    # --- Errbot's sending API -----------------------------------------------------------------------
    def send_message(self, msg: Message) -> None:
        """Errbot's send (command replies, plugin self.send): Markdown text to a private chat, best effort."""
        super().send_message(msg)
        chat_id = getattr(msg.to, "id", None)
        if not isinstance(chat_id, int) or chat_id <= 0:
            log.warning("Cannot send to %r: TGRelay sends to private chats (user ids) only", msg.to)
            return
        try:
            self.send_outgoing(chat_id, OutgoingMessage(text=msg.body or " ", text_format="markdown"))
        except TelegramError as exc:
            log.warning("Could not send a message to chat %s: %s", chat_id, exc)

    def send_card(self, card: Card) -> None:
        """A card as one Telegram message: bold title, body, fields; link as a URL button; image as photo."""
        chat_id = getattr(card.to, "id", None)
        if not isinstance(chat_id, int):
            log.warning("Cannot send a card to %r: private chats only", card.to)
            return
        lines = [f"<b>{escape(card.title)}</b>"] if card.title else []
        if card.body:
            lines.append(to_telegram_html(card.body, "markdown"))
        lines.extend(f"<b>{escape(str(k))}</b>: {escape(str(v))}" for k, v in card.fields or ())
        message = OutgoingMessage(text="\n".join(lines) or None, text_format="html")
        if card.link:
            message.inline_keyboard = [[InlineButton(text=card.title or card.link, url=card.link)]]
        if card.image:
            message.media_kind, message.media_url = "photo", card.image
        try:
            self.send_outgoing(chat_id, message)
        except TelegramError as exc:
            log.warning("Could not send a card to chat %s: %s", chat_id, exc)

    def send_stream_request(
        self,
        user: Identifier,
        fsource: BinaryIO,
        name: str | None = None,
        size: int | None = None,
        stream_type: str | None = None,
    ) -> Stream:
        """Upload a file-like object to the user's chat as a document, in Errbot's thread pool."""
        stream = Stream(user, fsource, name, size, stream_type)
        self.thread_pool.apply_async(self._upload_stream, (stream,))
        return stream

    def _upload_stream(self, stream: Stream) -> None:
        try:
            stream.accept()
            data = stream.read()
            self.send_outgoing(
                stream.identifier.id,
                OutgoingMessage(media_kind="document", media_bytes=data, filename=stream.name or "file"),
            )
            stream.success()
        except Exception as exc:
            log.warning("Upload of %s to %s failed: %s", stream.name, stream.identifier, redact(exc))
            stream.error()

    def build_identifier(self, txtrep: str) -> Identifier:
        """A TelegramPerson from a numeric user id ("123456789")."""
        return parse_identifier(txtrep)

    def build_reply(
        self, msg: Message, text: str | None = None, private: bool = False, threaded: bool = False
    ) -> Message:
        reply = self.build_message(text or "")
        reply.frm = self.bot_identifier
        reply.to = msg.frm
        return reply

    def is_from_self(self, msg: Message) -> bool:
        return msg.frm == self.bot_identifier

    def change_presence(self, status: str = ONLINE, message: str = "") -> None:
        """Telegram bots have no presence; nothing to do."""

    def rooms(self) -> list[Room]:
        raise RoomsNotSupportedError("TGRelay relays private chats only; Telegram groups are not rooms here")

    def query_room(self, room: str) -> Room:
        raise RoomsNotSupportedError("TGRelay relays private chats only; Telegram groups are not rooms here")

    def prefix_groupchat_reply(self, message: Message, identifier: Identifier) -> None:
        """No group chats in this backend."""


def _text_step(chat_id: int, part: str, quiet: bool) -> Callable[[Any], Callable[[RelayBot], Any]]:
    def step(reply_markup: Any) -> Callable[[RelayBot], Any]:
        return lambda bot: bot.send_html_text(chat_id, part, reply_markup=reply_markup, disable_notification=quiet)

    return step
