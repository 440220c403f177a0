"""The PTB side: one asyncio loop thread, the current telegram.Bot, and blocking calls into it from
any Errbot thread with Telegram's errors mapped to tgbackend.errors and short, bounded retries."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import certifi
import telegram
import urllib3
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest, RequestData
from urllib3.exceptions import EmptyPoolError, HTTPError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

# httpcore runs `import sniffio` several times per request. Without sniffio installed, each failed import
# scans sys.path again: 7-9 % of the bot's CPU under send load (py-spy). Remember the miss once; an
# installed sniffio is imported normally.
try:
    import sniffio  # noqa: F401
except ImportError:
    sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]

from tgbackend.errors import (
    BotBlockedError,
    ChatNotFoundError,
    InvalidTokenError,
    NotConnectedError,
    RejectedError,
    TelegramError,
    TelegramUnavailableError,
)
from tgbackend.redact import redact, register_secret

log = logging.getLogger("errbot.backends.tgrelay.client")

T = TypeVar("T")
CALL_TIMEOUT = 90.0
SETUP_HINT = "set one with `!telegram token <token>` (as an admin, in a private chat) or TELEGRAM_TOKEN"


@dataclass(frozen=True)
class BotInfo:
    """Who the bot is on Telegram."""

    id: int
    username: str
    link: str


class RelayBot(telegram.Bot):
    """telegram.Bot plus a getUpdates that returns the raw dicts, so one malformed update cannot
    make the whole batch unreadable."""

    async def get_raw_updates(self, offset: int | None, timeout: float, limit: int = 100) -> list[dict]:
        data: dict[str, Any] = {
            "timeout": int(timeout),
            "limit": limit,
            "allowed_updates": ["message", "callback_query"],
        }
        if offset is not None:
            data["offset"] = offset
        result = await self._post("getUpdates", data, read_timeout=timeout + 10.0)
        return result if isinstance(result, list) else []

    async def send_html_text(self, chat_id: int, text: str, *, reply_markup: telegram.TelegramObject | None = None,
                             disable_notification: bool = False) -> int:
        """sendMessage with HTML text; returns only the new message's id.

        The relay needs nothing else from the answer, and skipping the `Message` object PTB would build
        saves ~6 % of a send's CPU. The request is built, sent and its errors mapped exactly as
        `send_message` does (same `_post`)."""
        data: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": "HTML",
                                "reply_markup": reply_markup, "disable_notification": disable_notification}
        result = await self._post("sendMessage", data)
        return int(result["message_id"])


_Default = type(HTTPXRequest.DEFAULT_NONE)  # PTB's "not given" marker for timeouts


class ThreadedRequest(HTTPXRequest):
    """PTB's HTTPXRequest on the event loop; a blocking urllib3 pool when called from any other thread.

    Sends from the relay's worker threads drive PTB's coroutine in their own thread (see
    TelegramClient.call): PTB still builds the request and maps every answer to its typed errors (429
    RetryAfter, 400, 403, 401...), but the HTTP call is a plain keep-alive urllib3 request instead of a
    hop to the loop thread and httpx's async stack (per send: ~1 ms of CPU less, under the GIL).
    Same policy as httpx here: no retries, no redirects, the same timeouts and pool size.
    """

    def __init__(self, *, connection_pool_size: int, connect_timeout: float, read_timeout: float,
                 write_timeout: float, pool_timeout: float, media_write_timeout: float) -> None:
        super().__init__(connection_pool_size=connection_pool_size, connect_timeout=connect_timeout,
                         read_timeout=read_timeout, write_timeout=write_timeout, pool_timeout=pool_timeout,
                         media_write_timeout=media_write_timeout)
        self._timeouts = (connect_timeout, read_timeout, write_timeout, pool_timeout, media_write_timeout)
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=connection_pool_size, block=True, retries=False,
                                         ca_certs=certifi.where())

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = HTTPXRequest.DEFAULT_NONE,
                         write_timeout: Any = HTTPXRequest.DEFAULT_NONE,
                         connect_timeout: Any = HTTPXRequest.DEFAULT_NONE,
                         pool_timeout: Any = HTTPXRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if _loop_running():
            return await super().do_request(url, method, request_data, read_timeout=read_timeout,
                                            write_timeout=write_timeout, connect_timeout=connect_timeout,
                                            pool_timeout=pool_timeout)
        return self.blocking_request(url, method, request_data, read_timeout, write_timeout, connect_timeout,
                                     pool_timeout)

    def blocking_request(self, url: str, method: str, request_data: RequestData | None, read_timeout: Any,
                         write_timeout: Any, connect_timeout: Any, pool_timeout: Any) -> tuple[int, bytes]:
        """One HTTP call in this thread; timeouts and errors as HTTPXRequest (TimedOut, NetworkError)."""
        connect, read, write, pool, media_write = self._timeouts
        files = request_data.multipart_data if request_data is not None and request_data.contains_files else None
        fields = request_data.json_parameters if request_data is not None else {}
        connect = connect if isinstance(connect_timeout, _Default) else connect_timeout
        read = read if isinstance(read_timeout, _Default) else read_timeout
        if isinstance(write_timeout, _Default):
            write = media_write if files else write
        else:
            write = write_timeout
        pool = pool if isinstance(pool_timeout, _Default) else pool_timeout
        # urllib3 has one socket timeout after connecting: the longer of read and write.
        after_connect = None if read is None or write is None else max(read, write)
        try:
            response = self._pool.request_encode_body(
                method, url, fields={**fields, **files} if files else fields, encode_multipart=bool(files),
                headers={"User-Agent": self.USER_AGENT},
                timeout=urllib3.Timeout(connect=connect, read=after_connect), pool_timeout=pool,
                redirect=False, retries=False,
            )
        except EmptyPoolError as err:
            raise TimedOut(
                "Pool timeout: All connections in the connection pool are occupied. Request was *not* sent "
                "to Telegram."
            ) from err
        except Urllib3Timeout as err:
            raise TimedOut from err
        except HTTPError as err:
            raise NetworkError(f"urllib3.{type(err).__name__}: {err}") from err
        return response.status, response.data

    async def shutdown(self) -> None:
        self._pool.clear()
        await super().shutdown()


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def drive(coroutine: Awaitable[T]) -> T:
    """Run a coroutine to completion in this thread, without an event loop.

    For PTB calls whose HTTP request is a ThreadedRequest outside the loop: nothing in them suspends.
    Anything that does suspend is refused (closed, RuntimeError) rather than left half-run."""
    try:
        coroutine.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        return done.value
    coroutine.close()  # type: ignore[attr-defined]
    raise RuntimeError("a Telegram call tried to suspend outside the event loop")


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds, without PTB's deprecation warning on .retry_after."""
    delta = getattr(exc, "_retry_after", None)
    if delta is not None:
        return float(delta.total_seconds())
    return 1.0


def translate(exc: BaseException) -> TelegramError:
    """Map a PTB/network exception to the typed error plugins see (token masked)."""
    text = redact(getattr(exc, "message", None) or exc)
    if isinstance(exc, TelegramError):
        return exc
    if isinstance(exc, RetryAfter):
        wait = retry_after_seconds(exc)
        return TelegramUnavailableError(f"Telegram asks to wait {wait:g} s (429)", retry_after=wait)
    if isinstance(exc, Forbidden):
        return BotBlockedError(f"Telegram refused the chat (403): {text}")
    if isinstance(exc, InvalidToken):
        return NotConnectedError(f"Telegram rejected the bot token; {SETUP_HINT}")
    if isinstance(exc, BadRequest):
        if "chat not found" in text.lower():
            return ChatNotFoundError(f"Telegram says the chat does not exist (400): {text}")
        return RejectedError(f"Telegram rejected the request (400): {text}")
    if isinstance(exc, ChatMigrated):
        return RejectedError("the chat was migrated to a supergroup; private chats only here")
    if isinstance(exc, (NetworkError, Conflict, asyncio.TimeoutError, TimeoutError, OSError)):
        return TelegramUnavailableError(f"Telegram is unreachable or failing: {text}", retry_after=None)
    return TelegramUnavailableError(f"unexpected error talking to Telegram: {type(exc).__name__}: {text}")


class TelegramClient:
    """Owns the PTB event loop thread and the current bot; thread-safe, never blocks the loop."""

    def __init__(self, api_url: str, *, on_revoked: Callable[[], None] | None = None) -> None:
        self.api_url = api_url
        self._on_revoked = on_revoked
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="TGRelay PTB loop", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._bot: RelayBot | None = None
        self._token: str | None = None
        self.info: BotInfo | None = None
        self.generation = 0
        self._retired: list[RelayBot] = []

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    # --- running coroutines -------------------------------------------------------------------
    def run(self, coroutine: Awaitable[T], timeout: float = CALL_TIMEOUT) -> T:
        """Run a coroutine on the PTB loop and wait for it from this (non-loop) thread."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def schedule(self, coroutine: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Start a coroutine on the loop and return its future (the caller waits or cancels)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]

    def submit(self, coroutine: Awaitable[Any]) -> Any:
        """Schedule a coroutine on the loop without waiting (fire-and-forget); failures are logged."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        future.add_done_callback(_log_failure)
        return future

    # --- the bot ------------------------------------------------------------------------------
    @property
    def bot(self) -> RelayBot | None:
        return self._bot

    def _new_bot(self, token: str) -> RelayBot:
        return RelayBot(
            token,
            base_url=f"{self.api_url}/bot",
            base_file_url=f"{self.api_url}/file/bot",
            request=ThreadedRequest(
                connection_pool_size=128,
                connect_timeout=5.0,
                read_timeout=20.0,
                write_timeout=20.0,
                pool_timeout=30.0,
                media_write_timeout=60.0,
            ),
            get_updates_request=HTTPXRequest(connection_pool_size=2, connect_timeout=5.0, read_timeout=10.0),
        )

    def connect(self, token: str) -> BotInfo:
        """Check token with getMe and make it the current bot; the previous bot keeps working if it fails.

        Raises InvalidTokenError (refused) or TelegramUnavailableError (could not ask Telegram)."""
        register_secret(token)
        bot = self._new_bot(token)
        try:
            self.run(bot.initialize(), timeout=60.0)
        except InvalidToken:
            self._close_quietly(bot)
            raise InvalidTokenError(
                "Telegram refused this token (401 Unauthorized): copy it again from @BotFather"
            ) from None
        except Exception as exc:
            self._close_quietly(bot)
            raise translate(exc) from None
        except BaseException:
            self._close_quietly(bot)  # KeyboardInterrupt / SystemExit: shut down, never "retry later"
            raise
        me = bot.bot
        info = BotInfo(id=me.id, username=me.username or "", link=f"https://t.me/{me.username}")
        with self._lock:
            old, self._bot, self._token, self.info = self._bot, bot, token, info
            self.generation += 1
        if old is not None:
            self._close_quietly(old)
        return info

    def mark_revoked(self) -> None:
        """Forget a bot whose token Telegram now refuses (401)."""
        if self.disconnect() and self._on_revoked is not None:
            self._on_revoked()

    def disconnect(self) -> bool:
        """Stop using the current bot (polling and sends pause); True if there was one."""
        with self._lock:
            old, self._bot, self._token, self.info = self._bot, None, None, None
            self.generation += 1
        if old is not None:
            self._close_quietly(old)
        return old is not None

    def _close_quietly(self, bot: RelayBot) -> None:
        async def close() -> None:
            await asyncio.sleep(5.0)  # let requests still in flight on the old bot finish
            await _shutdown(bot)
            if bot in self._retired:
                self._retired.remove(bot)

        self._retired.append(bot)
        if self._loop.is_running():
            self.submit(close())

    # --- calls with retries ---------------------------------------------------------------------
    def call(
        self,
        operation: Callable[[RelayBot], Awaitable[T]],
        *,
        attempts: int = 3,
        max_wait: float = 5.0,
        before_attempt: Callable[[], None] | None = None,
    ) -> T:
        """Run operation(bot) on the loop; retry 429 (≤ max_wait), 5xx and network errors a few times,
        then raise the typed error. before_attempt (pacing) runs before each try, in the caller's thread."""
        backoff = 0.5
        for attempt in range(1, attempts + 1):
            bot = self._bot
            if bot is None:
                raise NotConnectedError(f"the bot has no working Telegram token; {SETUP_HINT}")
            if before_attempt is not None:
                before_attempt()
            try:
                return drive(operation(bot))
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if attempt == attempts or wait > max_wait:
                    raise translate(exc) from None
                log.info("Telegram asked to slow down: retrying in %.1f s", wait)
                time.sleep(wait)
            except InvalidToken:
                if bot is self._bot:
                    self.mark_revoked()
                raise NotConnectedError(f"Telegram rejected the bot token; {SETUP_HINT}") from None
            except (BadRequest, Forbidden, ChatMigrated) as exc:
                raise translate(exc) from None
            except Exception as exc:
                error = translate(exc)
                if attempt == attempts:
                    error.retry_after = error.retry_after or backoff * 2
                    raise error from None
                log.info(
                    "Telegram call failed (%s); retry %d of %d in %.1f s",
                    error,
                    attempt,
                    attempts - 1,
                    backoff,
                )
                time.sleep(backoff)
                backoff *= 2
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the bot's HTTP clients and stop the loop thread."""
        with self._lock:
            bot, self._bot = self._bot, None
        bots = [b for b in (bot, *self._retired) if b is not None]
        if self._loop.is_running():
            try:
                self.run(_close_all(bots), timeout=15.0)
            except Exception:
                log.debug("closing the Telegram clients failed", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._loop.is_running():
            self._loop.close()


async def _shutdown(bot: RelayBot) -> None:
    try:
        await bot.shutdown()
    except Exception:
        log.debug("closing a bot's HTTP clients failed", exc_info=True)


async def _close_all(bots: list[RelayBot]) -> None:
    """Cancel every other task on the loop, then close each bot's HTTP clients."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for bot in bots:
        await _shutdown(bot)


def _log_failure(future: Any) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("background Telegram call failed: %s", translate(exc))
