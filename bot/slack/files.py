"""Downloading a file a user shared: declared size checked first, the bot token sent only to Slack's own
file host (or, when SLACK_API_URL points elsewhere, to that host) and never across a redirect, the body
read with a hard cap, and Slack's HTML login page (what a token without files:read gets) recognised."""
from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any, Mapping
from urllib.parse import urlsplit

from platform_core.errors import FileRefused

SLACK_FILE_HOSTS = frozenset({"files.slack.com"})
CHUNK = 1024 * 1024


class _NoTokenOnRedirect(urllib.request.HTTPRedirectHandler):
    """Follow a redirect without the Authorization header: the bot token stays with the host it was meant for."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
            new.unredirected_hdrs.pop("Authorization", None)
        return new


_OPENER = urllib.request.build_opener(_NoTokenOnRedirect)


def allowed_hosts(api_url: str) -> frozenset[str]:
    host = urlsplit(api_url).hostname or ""
    return SLACK_FILE_HOSTS if host in ("", "slack.com") else SLACK_FILE_HOSTS | {host}


def download(file: Mapping[str, Any], *, token: str, api_url: str, max_bytes: int, timeout_s: float = 30) -> bytes:
    """The file's bytes; FileRefused for an oversized file, a foreign host or a failed download."""
    name = str(file.get("name") or "the file")
    size = int(file.get("size") or 0)
    if size > max_bytes:
        raise FileRefused(f"{name} is {size / 2**20:.1f} MB; the limit is {max_bytes // 2**20} MB.")
    url = str(file.get("url_private_download") or file.get("url_private") or "")
    if urlsplit(url).scheme not in ("https", "http") or urlsplit(url).hostname not in allowed_hosts(api_url):
        raise FileRefused(f"{name} could not be fetched from Slack; share it again.")
    request = urllib.request.Request(url)
    request.add_unredirected_header("Authorization", f"Bearer {token}")  # never copied onto a redirect
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:  # host checked above
            body = bytearray()
            while chunk := response.read(CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    raise FileRefused(f"{name} is larger than {max_bytes // 2**20} MB.")
    except (urllib.error.URLError, OSError, ValueError):
        raise FileRefused(f"{name} could not be downloaded from Slack; share it again.") from None
    if body[:15].lower().startswith(b"<!doctype html") or body[:6].lower() == b"<html>":
        raise FileRefused(f"{name} could not be downloaded: Slack answered with its sign-in page, so the app "
                          "cannot read files. Reinstall it with the files:read permission and share the file again.")
    return bytes(body)
