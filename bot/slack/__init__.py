"""The Slack channel: a Bolt app (app.py), its Lambda entry (lambda_entry.py) and outbound sender."""
