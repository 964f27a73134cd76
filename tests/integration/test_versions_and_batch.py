"""Beyond a single model and a single input: every version kept and listed, rollback, batch predictions as a
CSV with formula cells escaped; through the channel-agnostic dispatch on the in-memory fakes, and the console
channel on the local backend."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from bot.console.chat import ConsoleChat
from bot.wiring import build_services
from handlers.batch import escape_cell
from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from handlers.notify import watchers
from lambda_predict.handler import InProcessPredictions
from lambda_predict.predictor import Predictor
from platform_core.backend import Backend
from platform_core.config import Settings
from platform_core.jobs import ReplyTo
from platform_core.models import stored_versions
from tests.fakes import FakeTrainer, png
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "slack:TV"


class World:
    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self.trainer = FakeTrainer(["red", "green", "blue"])
        self.ctx = build_trainer_context(self.settings, trainers={"image": self.trainer, "sentiment": self.trainer},
                                         backend=backend)
        self.services = build_services(self.settings, launcher=lambda job: None, backend=backend)
        self.services.predictor = InProcessPredictions(Predictor(blobs=self.ctx.blobs, records=self.ctx.records),
                                                       self.ctx.blobs)

    def say(self, text: str, attachment: Attachment | None = None, tenant: str = TENANT):
        words = text.split()
        return dispatch(Command(words[0], tenant, "u", tuple(words[1:]), attachment), self.services)

    def train(self, classes: list[str], accuracy_trainer: FakeTrainer | None = None) -> None:
        self.trainer.classes = classes
        assert self.say("train colours").ok
        assert drain(self.ctx) == 1


def uploaded(built: World) -> World:
    assert built.say("upload colours", Attachment("c.zip", _zip())).ok
    return built


@pytest.fixture
def world() -> World:
    """The use cases and the runner over the in-memory fakes."""
    backend = MemoryBackend()
    return uploaded(World(backend.settings, backend))


@pytest.fixture
def local_world(tmp_path: Path) -> World:
    """The local backend, which the console channel builds for itself from the settings."""
    return uploaded(World(Settings(backend="local", home=tmp_path / "home")))


def test_versions_are_listed_rolled_back_and_never_overwritten(world: World) -> None:
    world.train(["red", "green", "blue"])
    world.train(["rouge", "vert", "bleu"])
    listing = world.say("models colours")
    assert listing.ok and [v["version"] for v in listing.data["versions"]] == [2, 1]
    assert "version 2 (current)" in listing.text and listing.buttons[0].command == "rollback colours 1"
    back = world.say("rollback colours")
    assert back.ok and "model version 1" in back.text
    red = world.say("predict colours", Attachment("r.png", png((250, 5, 5))))
    assert red.data["label"] == "red" and red.data["model_version"] == 1  # the rolled-back model answers
    world.train(["r", "g", "b"])  # a retrain after a rollback adds version 3; version 2 survives
    assert stored_versions(world.ctx.blobs, TENANT, "colours") == [1, 2, 3]
    assert world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).data["label"] == "r"
    assert world.say("rollback colours v2").ok
    assert world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).data["label"] == "rouge"


def test_rollback_refusals_are_clear(world: World) -> None:
    assert "no trained model yet" in world.say("models colours").text
    world.train(["red", "green", "blue"])
    for text, words in (("rollback colours", "older than the current one"), ("rollback colours 7", "versions are 1"),
                        ("rollback colours latest", "no model version latest"), ("rollback", "Usage: rollback NAME"),
                        ("rollback colours v\u00b2", "no model version v\u00b2")):  # '²'.isdigit(), yet not a number
        reply = world.say(text)
        assert not reply.ok and words in reply.text, reply.text
    assert not world.say("models colours", tenant="slack:OTHER").ok  # another workspace sees nothing


def test_a_zip_of_images_comes_back_as_a_csv_of_predictions(world: World) -> None:
    world.train(["red", "green", "blue"])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("photos/=cmd.png", png((250, 5, 5)))
        zf.writestr("photos/green.png", png((5, 250, 5)))
        zf.writestr("photos/broken.png", b"\x89PNG not really")
        zf.writestr("__MACOSX/._green.png", b"junk")
        zf.writestr("../escape.png", png((5, 5, 250)))
    reply = world.say("predict colours", Attachment("batch.zip", archive.getvalue()))
    assert reply.ok and reply.file is not None and reply.file[0] == "predictions-colours.csv"
    rows = list(csv.reader(io.StringIO(reply.file[1].decode())))
    assert rows[0] == ["input", "label", "confidence", "sure", "second_label", "second_confidence", "error"]
    by_name = {r[0]: r for r in rows[1:]}
    assert set(by_name) == {"photos/=cmd.png", "photos/green.png", "photos/broken.png", "../escape.png"}
    assert by_name["photos/green.png"][1] == "green" and 0 < float(by_name["photos/green.png"][2]) <= 1
    assert by_name["photos/=cmd.png"][1] == "red"  # the name is shown as typed in the chat reply...
    assert "'=cmd" not in reply.text and "Predicted 2 of 4" in reply.text
    assert "not a readable image" in by_name["photos/broken.png"][6] and by_name["../escape.png"][6]


def test_formula_cells_are_escaped_and_a_csv_of_texts_is_refused_by_an_image_model(world: World) -> None:
    assert [escape_cell(v) for v in ("=1+1", "+x", "-2", "@SUM(A1)", "\tx", "fine", None)] == \
        ["'=1+1", "'+x", "'-2", "'@SUM(A1)", "'\tx", "fine", ""]
    world.train(["red", "green", "blue"])
    texts = "text\n=HYPERLINK(\"http://x\")\ngreat film\n".encode()
    reply = world.say("predict colours", Attachment("reviews.csv", texts))
    rows = list(csv.reader(io.StringIO(reply.file[1].decode())))
    assert rows[1][0] == "'=HYPERLINK(\"http://x\")" and "send an image" in rows[1][6]
    assert "Predicted 0 of 2" in reply.text


def test_batch_limits_and_unknown_datasets(world: World) -> None:
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(501):
            zf.writestr(f"x/{i}.png", b"")
    assert "at most 500 images" in world.say("predict colours", Attachment("many.zip", many.getvalue())).text
    reply = world.say("predict nothing", Attachment("one.csv", b"hello\n"))
    assert not reply.ok and "nothing" in reply.text and reply.file is None


def test_the_console_saves_the_batch_csv_to_the_outbox(tmp_path: Path, local_world: World) -> None:
    world = local_world
    world.train(["red", "green", "blue"])
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.png", png((250, 5, 5)))
        zf.writestr("b.png", png((5, 5, 250)))
    out = io.StringIO()
    chat = ConsoleChat(world.settings, tenant=TENANT, user="u", out=out)
    chat.services.predictor = world.services.predictor
    assert chat.say(f"predict colours --file {archive}").ok
    saved = world.settings.home / "outbox" / "predictions-colours.csv"
    assert f"(file: {saved})" in out.getvalue() and saved.read_text().count("\n") == 3


def test_below_the_models_threshold_the_bot_says_it_is_not_sure(world: World) -> None:
    world.trainer.threshold = 0.999
    world.train(["red", "green", "blue"])
    muddy = world.say("predict colours", Attachment("m.png", png((120, 110, 100))))
    assert muddy.ok and muddy.data["sure"] is False and muddy.data["confidence_threshold"] == 0.999
    assert muddy.text.startswith("I'm not sure: maybe ") and " or " in muddy.text
    world.trainer.threshold = 0.2
    world.train(["red", "green", "blue"])
    sure = world.say("predict colours", Attachment("r.png", png((250, 5, 5))))
    assert sure.data["sure"] is True and sure.text.startswith("red (")


def test_the_threshold_is_chosen_on_validation_data() -> None:
    import numpy as np

    from trainer_ec2.metrics import confidence_threshold

    truth = [0] * 10 + [1] * 10
    confident_right = [[0.95, 0.05]] * 10 + [[0.1, 0.9]] * 8
    unsure_wrong = [[0.55, 0.45], [0.6, 0.4]]  # class 1 examples predicted 0 with little confidence
    probabilities = np.array(confident_right + unsure_wrong)
    assert confidence_threshold(truth, probabilities) == 0.9  # the two misses sit below it
    assert confidence_threshold(truth[:5], probabilities[:5]) is None  # too few examples to tell
    always_wrong = np.array([[0.2, 0.8]] * 10 + [[0.7, 0.3]] * 10)
    assert confidence_threshold(truth, always_wrong) > 0.8  # never sure


def test_feedback_buttons_keep_corrected_examples_and_retrain_adds_them(world: World) -> None:
    world.train(["red", "green", "blue"])
    reply = world.say("predict colours", Attachment("r.png", png((250, 5, 5))))
    prediction_id = reply.data["prediction_id"]
    assert [b.command for b in reply.buttons][0] == f"feedback colours {prediction_id} red"
    assert any(b.label.startswith("No, it's ") for b in reply.buttons)
    thanks = world.say(f"feedback colours {prediction_id} green")  # the user says it was green after all
    assert thanks.ok and "1 waiting" in thanks.text and thanks.buttons[0].command == "retrain colours"
    assert world.say(f"feedback colours {prediction_id} green").text == "Already noted, thanks."
    before = world.services.records.get(TENANT, "colours")
    retrained = world.say("retrain colours")
    assert retrained.ok and "Added 1 example(s) (green 1)" in retrained.text and "Queued 'colours'" in retrained.text
    after = world.services.records.get(TENANT, "colours")
    assert after.dataset_version == before.dataset_version + 1
    assert after.class_counts == {**before.class_counts, "green": before.class_counts["green"] + 1}
    assert drain(world.ctx) == 1 and world.services.records.get(TENANT, "colours").model_version == 2
    assert "no examples are waiting" in world.say("retrain colours").text


def test_feedback_refusals_and_full_classes(world: World) -> None:
    world.train(["red", "green", "blue"])
    prediction_id = world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).data["prediction_id"]
    assert "LABEL one of blue, green, red" in world.say(f"feedback colours {prediction_id} purple").text
    assert "too old" in world.say("feedback colours 000000000000 red").text
    assert not world.say(f"feedback colours {prediction_id} red", tenant="slack:OTHER").ok
    world.services.limits = type(world.services.limits)(max_images_per_class=10)  # every class is full
    assert world.say(f"feedback colours {prediction_id} red").ok
    full = world.say("retrain colours")
    assert not full.ok and "already at the maximum of 10" in full.text
    assert world.services.records.get(TENANT, "colours").dataset_version == 1  # nothing stored


def test_a_second_chat_joining_a_queued_job_is_told_it_will_hear_too(world: World) -> None:
    first = dispatch(Command("train", TENANT, "ada", ("colours",), admin=True), world.services,
                     reply_to=ReplyTo("slack", "C1"))
    joined = dispatch(Command("train", TENANT, "bob", ("colours",)), world.services,  # joining switches nothing
                      reply_to=ReplyTo("slack", "C2"))
    assert joined.data["job_id"] == first.data["job_id"] and "you will hear here" in joined.text
    notes = world.services.notifications.get(first.data["job_id"])
    assert watchers(world.services.notifications, first.data["job_id"]) == [ReplyTo("slack", "C2")]


def test_forget_deletes_every_kept_prediction_input(world: World) -> None:
    world.train(["red", "green", "blue"])
    ids = [world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).data["prediction_id"] for _ in range(2)]
    assert world.say(f"feedback colours {ids[0]} green").ok
    assert not world.say("forget colours", tenant="slack:OTHER").ok  # another workspace: nothing to forget
    reply = world.say("forget colours")
    assert reply.ok and reply.data["forgotten"] == 2
    assert world.ctx.blobs.list("feedback-pending/") == [] and world.ctx.blobs.list("feedback/") == []
    assert world.say("predict colours", Attachment("r.png", png((250, 5, 5)))).ok  # the model is untouched


def test_delete_asks_to_confirm_then_removes_the_dataset_its_models_and_kept_inputs(world: World) -> None:
    world.train(["red", "green", "blue"])
    world.say("predict colours", Attachment("r.png", png((250, 5, 5))))
    assert not world.say("delete colours", tenant="slack:OTHER").ok
    other_member = dispatch(Command("delete", TENANT, "mallory", ("colours", "confirm")), world.services)
    assert not other_member.ok and "or an admin of this chat can delete it" in other_member.text
    ask = world.say("delete colours")
    assert not ask.ok and "delete colours confirm" in ask.text and ask.buttons[0].command == "delete colours confirm"
    assert world.services.records.get(TENANT, "colours") is not None  # nothing happened yet
    done = world.say("delete colours confirm")
    assert done.ok and done.data["files"] >= 8  # the dataset, the model's artifacts, the kept input
    assert world.services.records.get(TENANT, "colours") is None
    assert world.ctx.blobs.list("datasets/") == world.ctx.blobs.list("models/") == []
    assert world.ctx.blobs.list("feedback-pending/") == []
    gone = world.say("status colours")
    assert not gone.ok and "colours" in gone.text
    assert world.say("upload colours", Attachment("c.zip", _zip())).ok  # the name is free again
