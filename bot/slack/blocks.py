"""Replies as Slack messages: escaped mrkdwn text in Block Kit sections, buttons in an actions block."""
from __future__ import annotations

from typing import Any

from handlers.commands import Reply

BUTTON_ACTION = "mlbot_command"  # every button; its value is the command it sends
SECTION_LIMIT = 3000  # Slack's limit on a section's text


def escape(text: str) -> str:
    """Slack's three control characters, so user text (names, labels, file names) is shown as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(reply: Reply) -> dict[str, Any]:
    """``text`` (notifications, screen readers) and ``blocks`` for chat.postMessage / chat.update / respond."""
    text = escape(reply.text)
    chunks = [text[i:i + SECTION_LIMIT] for i in range(0, len(text), SECTION_LIMIT)] or [" "]
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]
    if reply.buttons:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": f"{BUTTON_ACTION}_{i}", "value": b.command[:2000],
             "text": {"type": "plain_text", "text": b.label[:75]}} for i, b in enumerate(reply.buttons)]})
    return {"text": text[:SECTION_LIMIT], "blocks": blocks}
