"""One error hierarchy. Each error carries data and renders one clear sentence for the user.

Adapters turn these into replies in one place (``handlers.replies``); nothing matches on text.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from platform_core.validation.report import ValidationReport


class MlbotError(Exception):
    """Base class: every failure a user can see."""

    code = "error"

    def user_message(self) -> str:
        """A sentence saying what was wrong and what to do."""
        return str(self)


class ConfigError(MlbotError):
    """A required setting is missing or malformed."""

    code = "config"

    def __init__(self, setting: str, problem: str = "is not set") -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"Setting {setting} {problem}.")


class InvalidDatasetName(MlbotError):
    code = "invalid_name"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def user_message(self) -> str:
        return (
            f"'{self.name}' is not a usable dataset name: use 1 to 40 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )


class MissingAttachment(MlbotError):
    code = "missing_file"

    def __init__(self, verb: str) -> None:
        self.verb = verb
        super().__init__(verb)

    def user_message(self) -> str:
        return f"'{self.verb}' needs a file: attach a zip of images or a CSV of text,label rows."


class DatasetRejected(MlbotError):
    """Validation found problems; the report names each one."""

    code = "rejected"

    def __init__(self, report: "ValidationReport") -> None:
        self.report = report
        super().__init__(f"{len(report.errors)} problem(s)")

    def user_message(self) -> str:
        from platform_core.validation.report import plural

        lines = [f"The dataset was not stored: {plural(len(self.report.errors), 'problem')} to fix."]
        lines += [f"- {p.message}" for p in self.report.errors]
        return "\n".join(lines)


class DatasetNotFound(MlbotError):
    code = "not_found"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def user_message(self) -> str:
        return f"There is no dataset named '{self.name}' here. 'datasets' lists the ones you have."


class NotOwnerOrAdmin(MlbotError):
    """A command for the dataset's owner or an admin of the chat (or, without a dataset, for an admin)."""
    code = "not_allowed"

    def __init__(self, name: str | None, action: str) -> None:
        self.name, self.action = name, action
        super().__init__(action)

    def user_message(self) -> str:
        if self.name is None:
            return f"Only an admin of this chat can {self.action}; ask one of them."
        return (f"Only the person who uploaded '{self.name}' or an admin of this chat can {self.action}. "
                "Ask one of them, or upload your own copy under another name.")


class ApiKeyRefused(MlbotError):
    """An API request whose key is missing, malformed or unknown (REST 401), or revoked (403)."""
    code = "unauthorized"

    def __init__(self, why: str, revoked: bool = False) -> None:
        self.why, self.revoked = why, revoked
        super().__init__(why)

    def user_message(self) -> str:
        return (f"The API key {self.why}. Send 'Authorization: Bearer <key>' with a key from 'apikey new' in the "
                "chat (or 'mlbot apikey create'); a revoked key never works again.")


class UnknownApiKey(MlbotError):
    """`apikey revoke ID` named no key of this workspace or group."""
    code = "not_found"

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        super().__init__(key_id)

    def user_message(self) -> str:
        return f"There is no API key '{self.key_id}' here; 'apikey list' shows the ids of this chat's keys."


class DatasetBusy(MlbotError):
    code = "busy"

    def __init__(self, name: str, status: str) -> None:
        self.name = name
        self.status = status
        super().__init__(name)

    def user_message(self) -> str:
        return (
            f"'{self.name}' cannot be replaced now ({self.status}); "
            "wait until its training ends, then upload again."
        )


class ConcurrentUpdate(MlbotError):
    """Someone else changed the record between our read and our conditional write."""

    code = "conflict"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def user_message(self) -> str:
        return f"'{self.name}' was changed by another request at the same moment; please try again."


class StorageError(MlbotError):
    """A blob or record store failed; nothing the user did wrong."""

    code = "storage"

    def __init__(self, operation: str, key: str, cause: str = "") -> None:
        self.operation = operation
        self.key = key
        self.cause = cause
        super().__init__(f"{operation} {key}: {cause}")

    def user_message(self) -> str:
        return "Storage is not available right now, so nothing was saved; please try again in a minute."


class BlobNotFound(StorageError):
    code = "blob_not_found"

    def __init__(self, key: str) -> None:
        super().__init__("get", key, "no such blob")


class DatasetExists(MlbotError):
    """A conditional create lost: (tenant, name) already exists."""

    code = "exists"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def user_message(self) -> str:
        return f"A dataset named '{self.name}' was created at the same moment; please try again."


class UsageError(MlbotError):
    """A command was typed without what it needs."""

    code = "usage"

    def __init__(self, usage: str) -> None:
        self.usage = usage
        super().__init__(usage)

    def user_message(self) -> str:
        return f"Usage: {self.usage}"


class ModelNotTrained(MlbotError):
    code = "not_trained"

    def __init__(self, name: str, status: str) -> None:
        self.name = name
        self.status = status
        super().__init__(name)

    def user_message(self) -> str:
        return f"'{self.name}' has no trained model yet ({self.status}). Train it first: train {self.name}"


class BadPredictionInput(MlbotError):
    code = "bad_input"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

    def user_message(self) -> str:
        return f"Cannot predict: {self.reason}."


# --- Models and predictions ---------------------------------------------------------------------------

class PredictionFailed(MlbotError):
    """The predictor answered with an error object; its code and sentence are passed on unchanged."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)

    def user_message(self) -> str:
        return self.message


class UnknownVersion(MlbotError):
    """`rollback NAME VERSION` named a version the dataset does not have."""

    code = "unknown_version"

    def __init__(self, name: str, version: str, known: list[int]) -> None:
        self.name, self.version, self.known = name, version, known
        super().__init__(version)

    def user_message(self) -> str:
        versions = ", ".join(str(v) for v in self.known) or "none"
        return f"'{self.name}' has no model version {self.version}; its versions are {versions}. See: models {self.name}"


class ModelUnavailable(MlbotError):
    """A model folder is missing or incomplete."""

    code = "model_unavailable"

    def __init__(self, model_path: str, reason: str) -> None:
        self.model_path = model_path
        self.reason = reason
        super().__init__(f"{model_path}: {reason}")

    def user_message(self) -> str:
        return "The trained model could not be loaded; train the dataset again."


# --- Chat files -------------------------------------------------------------------------------------------

class FileRefused(MlbotError):
    """A file sent in a chat that will not be downloaded (too large, gone, on a foreign host, Slack's sign-in
    page instead of the file), with the reason in the user's terms."""

    code = "file_refused"

    def __init__(self, reason: str = "I could not fetch that file. Please send it again.") -> None:
        self.reason = reason
        super().__init__(reason)

    def user_message(self) -> str:
        return self.reason


# --- The trainer and its HTTP API ---------------------------------------------------------------------------

class TrainerUnavailable(MlbotError):
    """No trainer could take a queued job yet (it is starting, stopped or unreachable); the job stays queued."""

    code = "trainer_unavailable"

    def __init__(self, detail: str) -> None:
        self.detail = detail  # for the operator's log: which call failed and why
        super().__init__(detail)

    def user_message(self) -> str:
        return "The trainer could not be reached yet; the training stays queued and starts when a trainer is up."


class ChatUnreachable(MlbotError):
    """A chat the platform can no longer post to (the workspace uninstalled the app)."""

    code = "chat_unreachable"

    def __init__(self, channel: str, detail: str) -> None:
        self.channel, self.detail = channel, detail
        super().__init__(f"{channel}: {detail}")

    def user_message(self) -> str:
        return "The app is not installed in this workspace any more; an admin can add it again."


class BadRequest(MlbotError):
    """A field of an API request is malformed."""

    code = "bad_request"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)

    def user_message(self) -> str:
        return self.message


class WrongKind(MlbotError):
    """A training request names a recipe or endpoint of the other kind of dataset."""

    code = "wrong_kind"

    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind
        super().__init__(name)

    def user_message(self) -> str:
        return f"'{self.name}' is a {self.kind} dataset; use the matching endpoint or recipe."


# --- Training failures, raised where the trainer detects them -------------------------------------------

class TrainingError(MlbotError):
    """A training run stopped; nothing was stored and the last good model stays in use. The runner shows
    user_message() after "failed: ", hence lower case."""

    code = "training_failed"
    sentence = "training stopped"  # what user_message() says, filled in from the error's attributes

    def user_message(self) -> str:
        return self.sentence.format(**vars(self))


class TrainerOutOfMemory(TrainingError):
    code = "out_of_memory"
    sentence = "the trainer ran out of memory; try {advice}"

    def __init__(self, kind: str | None = None, detail: str = "") -> None:
        self.kind, self.detail = kind, detail  # detail: what the allocator said, for the logs
        self.advice = {"image": "fewer or smaller images", "sentiment": "fewer or shorter texts"}.get(
            kind or "", "a smaller dataset")
        super().__init__(detail or "out of memory")


class TrainingDataUnreadable(TrainingError):
    code = "training_data_unreadable"
    sentence = "the stored dataset {problem}; upload it again"

    def __init__(self, kind: str, problem: str) -> None:
        self.kind, self.problem = kind, problem  # e.g. "is not a readable zip (...)"
        super().__init__(f"the stored dataset {problem}")


class TooFewExamples(TrainingError):
    code = "too_few_examples"
    sentence = ("training needs at least {min_classes} classes with at least {min_per_class} example(s) each; this "
                "dataset has {classes} class(es), the smallest with {smallest}; add examples and upload it again")

    def __init__(self, kind: str, classes: int, smallest: int, min_classes: int, min_per_class: int) -> None:
        self.kind, self.classes, self.smallest = kind, classes, smallest
        self.min_classes, self.min_per_class = min_classes, min_per_class
        super().__init__(f"{classes} classes, the smallest with {smallest}")


class OnnxMismatch(TrainingError):
    code = "onnx_mismatch"
    sentence = ("the exported model did not reproduce the trained one (probabilities differ by {difference:.1e}, "
                "allowed {tolerance:.0e}), so it was not stored; please report this")

    def __init__(self, difference: float, tolerance: float) -> None:
        self.difference, self.tolerance = difference, tolerance
        super().__init__(f"ONNX and torch probabilities differ by {difference:.2e} (tolerance {tolerance:.0e})")


class WeightsError(TrainingError):
    """The pretrained weights are missing or do not fit MobileNetV2: the trainer's installation is at fault."""

    code = "weights_unavailable"
    sentence = "the trainer cannot load its pretrained image weights; its operator has to reinstall them"

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)
