"""Channel adapters: the only code that talks to Slack, Telegram or a terminal."""
