"""A local stand-in for Slack: the Web API methods mlbot calls, file downloads, upload URLs and response_urls.

The SDKs reach it through their own settings (``WebClient(base_url=...)``, the response_url and file URLs
in the payloads). Every call is recorded so tests assert on what the user would see.
"""
from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.serving import serve_in_thread

BOT_TOKEN = "xoxb-test-1234-abcdefSECRET"
LOGIN_PAGE = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    authorization: str | None


@dataclass
class FakeSlack:
    token: str = BOT_TOKEN
    calls: list[Call] = field(default_factory=list)
    responses: list[dict] = field(default_factory=list)  # bodies posted to response_urls
    uploads: list[bytes] = field(default_factory=list)  # bytes sent to upload URLs
    downloads: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)
    file_infos: dict[str, dict] = field(default_factory=dict)
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # method -> Retry-After seconds, once
    error_next: dict[str, str] = field(default_factory=dict)  # method -> Slack error code, once
    not_member: set[str] = field(default_factory=set)  # channels the bot was never invited to
    admins: set[str] = field(default_factory=set)  # users who are admins of their workspace (users.info)
    tokens: dict[str, str] = field(default_factory=dict)  # bot token -> the workspace (team id) it belongs to
    client_id: str = "1234.5678"
    client_secret: str = "oauth-client-secret"
    grants: dict[str, tuple[str, str]] = field(default_factory=dict)  # OAuth code -> (team id, bot token)

    def __post_init__(self) -> None:
        self.tokens.setdefault(self.token, "T1")
        self._file_teams: dict[str, str] = {}
        self._blobs: dict[str, bytes] = {}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = serve_in_thread(self._server)

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    def close(self) -> None:
        self._server.shutdown()

    # --- what tests set up -----------------------------------------------------------------------

    def grant(self, code: str, team: str, token: str, enterprise: str | None = None, org_wide: bool = False) -> None:
        """What an admin's approval on the authorize page gives: a code that oauth.v2.access exchanges for
        the workspace's bot token (a workspace of an Enterprise Grid ``enterprise``, or with ``org_wide`` the
        whole organisation, whose id ``team`` then is)."""
        self.grants[code] = (team, token, enterprise, org_wide)

    def revoke(self, token: str) -> None:
        """The workspace uninstalled the app: its token stops working."""
        with self._lock:
            self.tokens.pop(token, None)

    def tokens_used(self, method: str) -> list[str | None]:
        """The workspace each call of ``method`` was made for (by the token it carried)."""
        with self._lock:
            return [self.tokens.get((c.authorization or "").removeprefix("Bearer "), "revoked")
                    for c in self.calls if c.method == method]

    def add_file(self, file_id: str, name: str, data: bytes, *, user: str = "U1", comment: str | None = None,
                 size: int | None = None, host: str | None = None, team: str | None = None) -> dict:
        """A file as files.info and events describe it, downloadable from this server (with the token of
        ``team``, the workspace it was shared in, when given)."""
        self._blobs[f"/files/{file_id}/{name}"] = data
        if team:
            self._file_teams[f"/files/{file_id}/{name}"] = team
        url = f"{host or self.base}/files/{file_id}/{name}"
        info = {"id": file_id, "name": name, "title": name, "user": user, "size": len(data) if size is None else size,
                "mimetype": "application/octet-stream", "filetype": name.rsplit(".", 1)[-1],
                "url_private": url, "url_private_download": url}
        if comment:
            info["initial_comment"] = {"comment": comment}
        self.file_infos[file_id] = info
        return info

    def response_url(self, key: str = "1") -> str:
        return f"{self.base}/respond/{key}"

    # --- what tests read -------------------------------------------------------------------------

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    def posted(self) -> list[str]:
        """Texts the user saw: chat.postMessage, chat.update and response_url bodies, in order."""
        with self._lock:
            return [str(c.params.get("text", "")) for c in self.calls if c.method in ("chat.postMessage", "chat.update")]

    # --- the server ------------------------------------------------------------------------------

    @Request.application
    def _wsgi(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/api/"):
            return self._api(path[len("/api/"):], request)
        if path.startswith("/redirect/"):  # a file URL that moves: the token must not follow it
            with self._lock:
                self.downloads.append((path, request.headers.get("Authorization")))
            return Response("", 302, headers={"Location": "/files/" + path[len("/redirect/"):]})
        if path.startswith("/files/"):
            with self._lock:
                self.downloads.append((path, request.headers.get("Authorization")))
            token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
            if token not in self.tokens or self._file_teams.get(path, self.tokens[token]) != self.tokens[token]:
                return Response(LOGIN_PAGE, 200, content_type="text/html")  # what Slack does without a token
            data = self._blobs.get(path)
            return Response(data, 200) if data is not None else Response(b"not found", 404)
        if path.startswith("/upload/"):
            with self._lock:
                self.uploads.append(request.get_data())
            return Response(f"OK - {len(self.uploads[-1])}", 200)
        if path.startswith("/respond/"):
            with self._lock:
                self.responses.append(request.get_json(silent=True) or {})
            return Response("ok", 200)
        return Response("not found", 404)

    def _api(self, method: str, request: Request) -> Response:
        params: dict[str, Any] = dict(request.form)
        params.update(request.get_json(silent=True) or {})
        params.update(dict(request.args))
        with self._lock:
            self.calls.append(Call(method, params, request.headers.get("Authorization")))
            retry_after = self.rate_limit_next.pop(method, None)
            error = self.error_next.pop(method, None)
        if retry_after is not None:
            return Response(json.dumps({"ok": False, "error": "ratelimited"}), 429,
                            headers={"Retry-After": str(retry_after)}, content_type="application/json")
        if method == "oauth.v2.access":
            return _json(self._exchange(request, params))
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.tokens:
            return _json({"ok": False, "error": "invalid_auth" if token else "not_authed"})
        if error is not None:
            return _json({"ok": False, "error": error})
        return _json(self._answer(method, params, self.tokens[token]))

    def _exchange(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        """oauth.v2.access: the app's client credentials (HTTP Basic) and a code granted once."""
        auth = request.authorization
        if auth is None or (auth.username, auth.password) != (self.client_id, self.client_secret):
            return {"ok": False, "error": "invalid_client_id"}
        with self._lock:
            granted = self.grants.pop(str(params.get("code")), None)
        if granted is None:
            return {"ok": False, "error": "invalid_code"}
        team, token, enterprise, org_wide = granted
        with self._lock:
            self.tokens[token] = team
        return {"ok": True, "app_id": "A0MLBOT", "authed_user": {"id": "UADMIN"}, "scope": "commands,chat:write",
                "token_type": "bot", "access_token": token, "bot_user_id": f"UBOT{team}",
                "team": None if org_wide else {"id": team, "name": f"Team {team}"},
                "enterprise": {"id": enterprise, "name": f"Org {enterprise}"} if enterprise else None,
                "is_enterprise_install": org_wide}

    def _answer(self, method: str, params: dict[str, Any], team: str = "T1") -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://example.slack.com/", "team": "Example", "user": "mlbot",
                    "team_id": team, "user_id": f"UBOT{team}", "bot_id": f"B{team}"}
        if method == "chat.postMessage":
            channel = str(params.get("channel"))
            if channel in self.not_member:
                return {"ok": False, "error": "not_in_channel"}
            if channel.startswith("U"):  # posting to a user opens the app's direct conversation with them
                channel = "D" + channel[1:]
            ts = f"{1700000000 + next(self._ts)}.000100"
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text"), "ts": ts}}
        if method == "users.info":
            user = str(params.get("user"))
            return {"ok": True, "user": {"id": user, "team_id": team, "is_admin": user in self.admins,
                                         "is_owner": False, "is_primary_owner": False, "is_bot": False}}
        if method == "chat.update":
            return {"ok": True, "channel": params.get("channel"), "ts": params.get("ts"), "text": params.get("text")}
        if method == "files.info":
            info = self.file_infos.get(str(params.get("file")))
            return {"ok": True, "file": info} if info else {"ok": False, "error": "file_not_found"}
        if method == "files.getUploadURLExternal":
            file_id = f"FUP{next(self._ts)}"
            return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files")
            files = json.loads(files) if isinstance(files, str) else files
            return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files or []]}
        return {"ok": True}


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), 200, content_type="application/json")
