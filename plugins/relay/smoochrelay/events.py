"""Fan-out of one relay event to the webhooks subscribed to its trigger, as durable outbox jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smoochrelay import smooch
from smoochrelay.store import RelayStore, WebhookJob


class EventFanout:
    """Builds one WebhookJob per matching webhook, rendering the appUser as each webhook asks."""

    def __init__(self, store: RelayStore, app_id: str) -> None:
        self._store = store
        self._app_id = app_id

    def jobs(self, trigger: str, app_user: dict, **fields: Any) -> list[WebhookJob]:
        """Jobs for every webhook listening to `trigger`; the lane keeps order per conversation."""
        return self.jobs_with(trigger, app_user, lambda: fields)

    def jobs_with(self, trigger: str, app_user: dict, fields: Callable[[], dict]) -> list[WebhookJob]:
        """Like jobs(), but builds the payload fields only when some webhook listens."""
        hooks = [hook for hook in self._store.list_webhooks() if smooch.webhook_matches(hook.triggers, trigger)]
        if not hooks:
            return []
        built = fields()
        conversation_id = app_user["conversation_id"]
        payloads: dict[tuple[bool, bool], dict] = {}
        jobs = []
        for hook in hooks:
            shape = (bool(hook.include_full_app_user), bool(hook.include_client))
            if shape not in payloads:
                payloads[shape] = self._payload(trigger, app_user, conversation_id, built, *shape)
            jobs.append(WebhookJob(webhook_id=hook.id, lane=conversation_id, trigger=trigger,
                                   payload=payloads[shape]))
        return jobs

    def _payload(self, trigger: str, app_user: dict, conversation_id: str, fields: dict, full: bool,
                 include_client: bool) -> dict:
        """One payload shape: truncated or full appUser, with the Telegram client when asked (includeClient)."""
        extra = dict(fields)
        if include_client:
            extra["client"] = smooch.app_user_object(app_user, full=True)["clients"][0]
        return smooch.webhook_payload(trigger, app_id=self._app_id,
                                      app_user=smooch.app_user_object(app_user, full=full),
                                      conversation_id=conversation_id, **extra)
