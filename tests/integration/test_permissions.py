"""Who may do what in a shared chat (handlers.permissions), command by command: what deletes something or
switches the model that answers is for the dataset's owner or an admin of the chat; the rest is for anyone
in it. A refusal changes nothing."""
from __future__ import annotations

import pytest

from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from platform_core.records import TrainingStatus
from tests.fakes import png
from tests.integration.test_trainer_runner import _zip
from tests.integration.test_versions_and_batch import TENANT, World, uploaded
from tests.memory import MemoryBackend
from trainer_ec2.runner import drain

OWNER = "u"  # who uploaded 'colours' (World.say)


@pytest.fixture
def world() -> World:
    built = uploaded(World((backend := MemoryBackend()).settings, backend))
    built.train(["red", "green", "blue"])
    built.train(["red", "green", "blue"])  # two model versions, so a rollback has somewhere to go
    prediction = built.say("predict colours", Attachment("r.png", png((250, 5, 5))))
    assert built.say(f"feedback colours {prediction.data['prediction_id']} green").ok  # an example waiting
    return built


GUARDED = {
    "delete": (("colours", "confirm"), None),
    "upload": (("colours",), lambda: Attachment("c.zip", _zip())),
    "train": (("colours",), None),
    "retrain": (("colours",), None),
    "rollback": (("colours",), None),
    "forget": (("colours",), None),
}


def _state(world: World) -> tuple:
    record = world.services.records.get(TENANT, "colours")
    return (record and (record.dataset_version, record.model_version, record.training_status),
            sorted(world.services.blobs.list("")), world.services.jobs.queued())


@pytest.mark.parametrize("verb", list(GUARDED))
def test_a_member_who_is_neither_owner_nor_admin_is_refused_and_nothing_changes(world: World, verb: str) -> None:
    args, attachment = GUARDED[verb]
    before = _state(world)
    reply = dispatch(Command(verb, TENANT, "mallory", args, attachment() if attachment else None,
                             admin=lambda: False), world.services)
    assert not reply.ok and reply.data["error"] == "not_allowed", reply.text
    assert reply.text.startswith("Only the person who uploaded 'colours' or an admin of this chat can ")
    assert _state(world) == before


@pytest.mark.parametrize("who", ["owner", "admin"])
@pytest.mark.parametrize("verb", list(GUARDED))
def test_the_owner_and_an_admin_of_the_chat_may(world: World, verb: str, who: str) -> None:
    args, attachment = GUARDED[verb]
    asked: list[str] = []

    def is_admin() -> bool:
        asked.append(verb)
        return True
    user = OWNER if who == "owner" else "an-admin"
    reply = dispatch(Command(verb, TENANT, user, args, attachment() if attachment else None, admin=is_admin),
                     world.services)
    assert reply.ok, reply.text
    assert (asked == []) == (who == "owner") and set(asked) <= {verb}  # the admin check runs only when needed


@pytest.mark.parametrize("text", ["datasets", "status colours", "models colours", "predict colours"])
def test_reading_and_predicting_are_for_everyone_in_the_chat(world: World, text: str) -> None:
    words = text.split()
    attachment = Attachment("g.png", png((5, 250, 5))) if words[0] == "predict" else None
    reply = dispatch(Command(words[0], TENANT, "mallory", tuple(words[1:]), attachment, admin=False),
                     world.services)
    assert reply.ok, reply.text


def test_joining_a_training_that_is_already_queued_is_for_everyone(world: World) -> None:
    assert world.say("train colours").ok
    assert world.services.records.get(TENANT, "colours").training_status == TrainingStatus.QUEUED.value
    joined = dispatch(Command("train", TENANT, "mallory", ("colours",), admin=False), world.services)
    assert joined.ok and "already queued" in joined.text
    assert drain(world.ctx) == 1
