"""The Telegram channel: the webhook entry (secret check, update -> Command) and the Bot API sender."""
