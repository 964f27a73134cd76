"""A local fake of the Telegram Bot API, for tests without internet.

It answers ``POST /bot<token>/<method>`` for the methods mlbot uses (sendMessage, sendPhoto, sendDocument,
editMessageText, getFile, answerCallbackQuery, getChatMember, getUpdates) with the Bot API's
``{"ok": true, "result": ...}`` shapes, serves files at ``/file/bot<token>/<file_path>``, and records every
call so tests assert on what the user would see.
python-telegram-bot reaches it through ``Bot(base_url=server.api_url, base_file_url=server.file_url)``.
Requests are not logged: their paths carry the token.
"""
from __future__ import annotations

import io
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from PIL import Image
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.serving import serve_in_thread

JSON_PARAMS = {"reply_markup", "reply_parameters", "entities", "caption_entities", "link_preview_options"}
DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses larger files to bots
BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "mlbot", "username": "mlbot_test_bot"}


@dataclass
class Call:
    """One request the bot made: the method, its parameters (reply_markup and the like JSON-decoded), uploaded
    files, and the result answered."""

    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    result: Any = None  # what the server answered in "result", when it succeeded


@dataclass
class StoredFile:
    data: bytes
    file_path: str


class _Quiet(WSGIRequestHandler):
    def log(self, *args: Any) -> None:  # werkzeug would log each path, and each path holds the token
        pass


class FakeTelegram:
    """The Bot API for one token, on 127.0.0.1 and a free port; use as a context manager."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, StoredFile] = {}
        self.messages: dict[tuple[str, int], str] = {}  # (chat id, message id) -> current text
        self._failures: dict[str, int] = {}  # method -> retry_after for its next call
        self.updates: list[dict[str, Any]] = []  # what getUpdates hands out (long polling)
        self.members: dict[tuple[str, str], str] = {}  # (chat id, user id) -> status; "member" if absent
        self.unknown_chats: set[str] = set()  # chats getChatMember answers "chat not found" for
        self.never_started: set[str] = set()  # users who never opened a private chat with the bot
        self.migrated: dict[str, int] = {}  # a group upgraded to a supergroup -> the supergroup's id
        self._ids = itertools.count(500)
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet)
        self._thread = serve_in_thread(self._server, "fake-telegram", start=False)

    @property
    def api_url(self) -> str:
        """TELEGRAM_API_URL for this server (the token is appended by python-telegram-bot)."""
        return f"http://127.0.0.1:{self._server.port}/bot"

    @property
    def file_url(self) -> str:
        """TELEGRAM_FILE_URL for this server."""
        return f"http://127.0.0.1:{self._server.port}/file/bot"

    def __enter__(self) -> "FakeTelegram":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    # -- test controls ------------------------------------------------------------------------------

    def add_file(self, file_id: str, data: bytes, *, file_path: str | None = None) -> None:
        """Make ``file_id`` downloadable; ``file_path`` is what getFile answers (default documents/<id>)."""
        self.files[file_id] = StoredFile(data, file_path or f"documents/{file_id}")

    def fail_next(self, method: str, retry_after: int) -> None:
        """Answer the next call of ``method`` with 429 Too Many Requests and this ``retry_after``."""
        self._failures[method] = retry_after

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        """What getChatMember answers for this user in this chat: creator, administrator, member, restricted,
        left or kicked."""
        if status not in _MEMBER_FIELDS:
            raise ValueError(f"not a chat member status: {status}")
        self.members[(str(chat_id), str(user_id))] = status

    def never_opened_a_chat(self, user_id: int) -> None:
        """This user never pressed Start: the bot may not message them privately (403)."""
        self.never_started.add(str(user_id))

    def forget_chat(self, chat_id: int) -> None:
        """getChatMember in this chat answers 400 "chat not found" (the bot was removed, say)."""
        self.unknown_chats.add(str(chat_id))

    def migrate(self, group_id: int, supergroup_id: int) -> None:
        """The group became a supergroup: sending to the group answers 400 with ``migrate_to_chat_id``."""
        self.migrated[str(group_id)] = supergroup_id

    def sent(self, *methods: str) -> list[Call]:
        """The recorded calls of these methods, in order."""
        return [c for c in self.calls if c.method in methods]

    def texts(self) -> list[str]:
        """Every text and caption the user was shown, in order."""
        return [str(c.params.get("text", c.params.get("caption", ""))) for c in self.calls
                if c.method in ("sendMessage", "sendPhoto", "editMessageText")]

    # -- the API ------------------------------------------------------------------------------------

    @Request.application
    def _app(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and parts[:1] == ["file"] and len(parts) > 2:
            return self._download(parts[1], "/".join(parts[2:]))
        if request.method != "POST" or len(parts) != 2 or not parts[0].startswith("bot"):
            return _error(404, "Not Found")
        if parts[0] != f"bot{self.token}":
            return _error(401, "Unauthorized")
        method = parts[1]
        params = {k: json.loads(v) if k in JSON_PARAMS else v for k, v in request.form.items()}
        files = {k: (f.filename or "", f.read()) for k, f in request.files.items()}
        with self._lock:
            call = Call(method, params, files)
            self.calls.append(call)
            retry_after = self._failures.pop(method, None)
            if retry_after is not None:
                return _error(429, f"Too Many Requests: retry after {retry_after}",
                              parameters={"retry_after": retry_after})
            moved = self.migrated.get(str(params.get("chat_id")))
            if moved is not None:
                return _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                              parameters={"migrate_to_chat_id": moved})
            handler: Callable[[dict, dict], Any] | None = getattr(self, f"_{method}", None)
            if handler is None:
                return _error(404, "Not Found")
            answer = handler(params, files)
            if isinstance(answer, Response):
                return answer
            call.result = answer
            return Response(json.dumps({"ok": True, "result": answer}), content_type="application/json")

    def _download(self, token_part: str, file_path: str) -> Response:
        if token_part != f"bot{self.token}":
            return _error(401, "Unauthorized")
        with self._lock:
            self.calls.append(Call("download", {"file_path": file_path}))
            stored = next((f for f in self.files.values() if f.file_path == file_path), None)
        if stored is None:
            return _error(404, "Not Found")
        return Response(stored.data, content_type="application/octet-stream")

    def _message(self, chat_id: Any, **content: Any) -> dict:
        message_id = next(self._ids)
        chat = _chat(chat_id)
        self.messages[(str(chat_id), message_id)] = str(content.get("text", ""))
        return {"message_id": message_id, "from": BOT_USER, "chat": chat, "date": int(time.time()),
                **{k: v for k, v in content.items() if v is not None}}

    def _sendMessage(self, params: dict, files: dict) -> dict | Response:
        if str(params.get("chat_id")) in self.never_started:
            return _error(403, "Forbidden: bot can't initiate conversation with a user")
        if not str(params.get("text", "")).strip():
            return _error(400, "Bad Request: message text is empty")
        if len(str(params["text"]).encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        return self._message(params["chat_id"], text=params["text"], reply_markup=params.get("reply_markup"))

    def _sendPhoto(self, params: dict, files: dict) -> dict | Response:
        if "photo" not in files:
            return _error(400, "Bad Request: there is no photo in the request")
        try:
            width, height = Image.open(io.BytesIO(files["photo"][1])).size
        except Exception:
            return _error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        size = {"file_id": f"AgACAgQAAxk-{next(self._ids)}", "file_unique_id": f"AQAD{next(self._ids)}",
                "width": width, "height": height, "file_size": len(files["photo"][1])}
        return self._message(params["chat_id"], photo=[size], caption=params.get("caption"),
                             reply_markup=params.get("reply_markup"))

    def _sendDocument(self, params: dict, files: dict) -> dict | Response:
        if "document" not in files:
            return _error(400, "Bad Request: there is no document in the request")
        name, data = files["document"]
        document = {"file_id": f"BQACAgQAAxk-{next(self._ids)}", "file_unique_id": f"AgAD{next(self._ids)}",
                    "file_name": name, "file_size": len(data)}
        return self._message(params["chat_id"], document=document, caption=params.get("caption"),
                             reply_markup=params.get("reply_markup"))

    def _editMessageText(self, params: dict, files: dict) -> dict | Response:
        key = (str(params.get("chat_id")), int(params.get("message_id", 0)))
        if key not in self.messages:
            return _error(400, "Bad Request: message to edit not found")
        if self.messages[key] == params.get("text"):
            return _error(400, "Bad Request: message is not modified: specified new message content and reply "
                               "markup are exactly the same as a current content and reply markup of the message")
        self.messages[key] = str(params.get("text"))
        return {"message_id": key[1], "from": BOT_USER, "chat": _chat(key[0]), "date": int(time.time()) - 5,
                "edit_date": int(time.time()), "text": params.get("text")}

    def _getFile(self, params: dict, files: dict) -> dict | Response:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            return _error(400, "Bad Request: invalid file_id")
        if len(stored.data) > DOWNLOAD_LIMIT:
            return _error(400, "Bad Request: file is too big")
        return {"file_id": params["file_id"], "file_unique_id": f"AgAD{next(self._ids)}",
                "file_size": len(stored.data), "file_path": stored.file_path}

    def _answerCallbackQuery(self, params: dict, files: dict) -> bool:
        return True

    def _getChatMember(self, params: dict, files: dict) -> dict | Response:
        chat, user = str(params.get("chat_id")), str(params.get("user_id"))
        if chat in self.unknown_chats:
            return _error(400, "Bad Request: chat not found")
        status = self.members.get((chat, user), "member")
        person = {"id": int(user), "is_bot": False, "first_name": f"user{user}"}
        return {"status": status, "user": person, **_MEMBER_FIELDS[status]}

    def _getUpdates(self, params: dict, files: dict) -> list[dict]:
        """Updates from ``offset`` on; those below it are confirmed and forgotten, as Telegram does."""
        offset = int(params.get("offset") or 0)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        return list(self.updates)


_RIGHTS = ("can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
           "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
           "can_delete_stories")
_RESTRICTIONS = ("can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
                 "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
                 "can_send_other_messages", "can_add_web_page_previews", "can_change_info", "can_invite_users",
                 "can_pin_messages", "can_manage_topics", "can_edit_tag", "can_react_to_messages")
# The fields each ChatMember kind carries besides "status" and "user", as the Bot API sends them.
_MEMBER_FIELDS: dict[str, dict[str, Any]] = {
    "creator": {"is_anonymous": False},
    "administrator": {"can_be_edited": False, "is_anonymous": False, **{r: True for r in _RIGHTS}},
    "member": {},
    "restricted": {"is_member": True, "until_date": 0, **{r: False for r in _RESTRICTIONS}},
    "left": {},
    "kicked": {"until_date": 0},
}


def _chat(chat_id: Any) -> dict[str, Any]:
    kind = "private" if int(chat_id) > 0 else "supergroup" if str(chat_id).startswith("-100") else "group"
    return {"id": int(chat_id), "type": kind}


def _error(code: int, description: str, **extra: Any) -> Response:
    body = {"ok": False, "error_code": code, "description": description, **extra}
    return Response(json.dumps(body), status=code, content_type="application/json")
