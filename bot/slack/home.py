"""The App Home tab: the person's workspace datasets, each with its status, validation accuracy and current
model version; published when they open the tab and again when one of their trainings ends."""
from __future__ import annotations

import logging
from typing import Any, Callable

from bot.slack.blocks import escape
from platform_core.events import FAILED, FINISHED, TrainingEvent
from platform_core.jobs import ReplyTo
from platform_core.ports import DatasetRepository
from platform_core.records import DatasetRecord

log = logging.getLogger(__name__)
MAX_LISTED = 40  # a Home view holds at most 100 blocks


def home_view(records: list[DatasetRecord]) -> dict[str, Any]:
    """The Home tab's view for one workspace's datasets (sorted by name, as the store lists them)."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": "Your datasets"}}]
    if not records:
        blocks.append(_section("No datasets yet. Send a zip of images (one folder per class) or a CSV of "
                               "text,label with the message `upload NAME`, then `train NAME`."))
    for record in records[:MAX_LISTED]:
        accuracy = "" if record.validation_accuracy is None else f", validation accuracy {record.validation_accuracy:.1%}"
        model = f"model version {record.model_version}" if record.model_version else "no model yet"
        blocks.append(_section(f"*{escape(record.name)}* ({record.kind}): {record.training_status}{accuracy}; "
                               f"{model}"))
    if len(records) > MAX_LISTED:
        blocks.append(_section(f"... and {len(records) - MAX_LISTED} more: `/ml datasets` lists them all."))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "`/ml help` for every command"}]})
    return {"type": "home", "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def publish_home(client: Any, user: str, records: DatasetRepository, tenant: str) -> None:
    client.views_publish(user_id=user, view=home_view(records.list(tenant)))


class HomeRefresher:
    """A training-events subscriber: when a Slack user's training ends, their Home tab shows the new state.
    ``client_for`` gives the WebClient of the workspace a ReplyTo names (bot.slack.sender.SlackSender)."""

    def __init__(self, client_for: Callable[[ReplyTo], Any], records: DatasetRepository) -> None:
        self._client_for, self._records = client_for, records

    def __call__(self, event: TrainingEvent) -> None:
        reply_to = event.reply_to
        if event.type not in (FINISHED, FAILED) or reply_to is None or reply_to.channel != "slack" or not reply_to.user:
            return
        try:
            publish_home(self._client_for(reply_to), reply_to.user, self._records, event.tenant)
        except Exception:  # the tab is a convenience: never fails the notice
            log.warning("could not refresh the Home tab of %s", reply_to.user, exc_info=True)
