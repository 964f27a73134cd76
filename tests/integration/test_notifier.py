"""The notifier Lambda: SNS records in (the recorded Lambda event shape), chat messages out at a fake Slack."""
from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path

import pytest

from bot.notifier import build_notifier, notify_records
from platform_core.backend import backend_for
from platform_core.config import Settings
from platform_core.jobs import ReplyTo
from platform_core.events import FAILED, TrainingEvent
from tests.fake_slack import BOT_TOKEN, FakeSlack
from tests.fakes import png
from tests.memory import MemoryIdempotency, MemoryNotificationLog

EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture
def slack(tmp_path: Path):
    fake = FakeSlack()
    settings = Settings(backend="local", home=tmp_path / "home", slack_bot_token=BOT_TOKEN,
                        slack_api_url=fake.api_url)
    blobs = backend_for(settings).blobs
    blobs.put("models/slack:T0001/colours/v1/confusion.png", png((1, 2, 3)))
    try:
        yield fake, settings
    finally:
        fake.close()


def sns_event() -> dict:
    return json.loads((EVENTS / "sns_training_finished.json").read_text())


def test_a_finished_event_posts_the_summary_and_the_matrix_once(slack) -> None:
    fake, settings = slack
    notifier = build_notifier(settings)
    assert notify_records(sns_event(), notifier) == 1
    assert notify_records(sns_event(), notifier) == 1  # SNS delivers at least once
    posts = [c for c in fake.calls if c.method == "chat.postMessage"]
    assert len(posts) == 1 and posts[0].params["channel"] == "C2147483705"
    assert posts[0].params["text"].startswith("Training 'colours' finished: validation accuracy 90.0% (train 100.0%)")
    assert "red 50.0% / 100.0%" in posts[0].params["text"]
    assert fake.uploads == [png((1, 2, 3))]


def test_a_refusing_chat_is_recorded_and_never_raises(slack, caplog) -> None:
    fake, settings = slack
    fake.error_next["chat.postMessage"] = "channel_not_found"
    with caplog.at_level(logging.ERROR):
        assert notify_records(sns_event(), build_notifier(settings)) == 1
    notes = backend_for(settings).notifications.get("job1")
    assert "channel_not_found" in notes["last_error"] and not any(k.startswith("final_sent") for k in notes)
    assert BOT_TOKEN not in caplog.text


def test_a_failure_is_told_in_plain_words_and_junk_records_are_skipped(slack) -> None:
    fake, settings = slack
    event = sns_event()
    failed = TrainingEvent(FAILED, "job2", "slack:T0001", "colours", {"channel": "slack", "channel_id": "C1"},
                           {"reason": "the dataset has only one class left after decoding"})
    junk = copy.deepcopy(event["Records"][0])
    junk["Sns"]["Message"] = "not json"
    event["Records"] = [junk, {**event["Records"][0], "Sns": {**event["Records"][0]["Sns"], "Message": failed.to_json()}}]
    assert notify_records(event, build_notifier(settings)) == 1
    text = fake.posted()[-1]
    assert text.startswith("Training 'colours' failed: the dataset has only one class left after decoding.")


def test_an_event_for_a_channel_without_a_token_is_dropped_quietly(tmp_path: Path) -> None:
    settings = Settings(backend="local", home=tmp_path / "home")
    assert notify_records(sns_event(), build_notifier(settings)) == 1  # nothing to send with, nothing raised


def test_after_the_summary_the_mistakes_album_shows_what_the_model_got_wrong(slack) -> None:
    fake, settings = slack
    blobs = backend_for(settings).blobs
    blobs.put("models/slack:T0001/colours/v1/mistakes.png", png((9, 9, 9)))
    event = sns_event()
    message = json.loads(event["Records"][0]["Sns"]["Message"])
    message["payload"].update(mistakes_png_key="models/slack:T0001/colours/v1/mistakes.png", mistakes=[
        {"input": "red/0007.png", "true": "red", "predicted": "blue", "confidence": 0.81}])
    event["Records"][0]["Sns"]["Message"] = json.dumps(message)
    assert notify_records(event, build_notifier(settings)) == 1
    summary, album = [c.params["text"] for c in fake.calls if c.method == "chat.postMessage"]
    assert summary.startswith("Training 'colours' finished")
    assert album.splitlines() == ["Where 'colours' went wrong on held-out examples (true -&gt; predicted):",
                                  "- red -&gt; blue (81%): 0007.png"]  # escaped for Slack
    assert fake.uploads == [png((1, 2, 3)), png((9, 9, 9))]  # the confusion matrix, then the album


def test_the_album_lists_the_most_confident_mistakes_first() -> None:
    import io

    import numpy as np
    from PIL import Image

    from trainer_ec2.mistakes import album_png, wrong

    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]])
    missed = wrong([0, 0, 0, 1], probabilities, ["cat", "dog"], ["a.png", "b.png", "c.png", "d.png"])
    assert [(m["input"], m["predicted"], m["confidence"]) for m in missed] == [("b.png", "dog", 0.7),
                                                                              ("c.png", "dog", 0.55)]
    sheet = Image.open(io.BytesIO(album_png([png((250, 0, 0)), png((0, 250, 0))], missed)))
    assert sheet.format == "PNG" and sheet.size == (224, 142)


class Recorder:
    """A ChatSender that remembers what each chat saw."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def send(self, reply_to, reply) -> str:
        self.seen.setdefault(reply_to.chat, []).append(reply.text)
        return str(len(self.seen[reply_to.chat]))

    def edit(self, reply_to, ref, reply) -> None:
        self.seen[reply_to.chat].append("(edited) " + reply.text)


def test_a_chat_that_joined_the_job_is_told_too_with_its_own_progress_message() -> None:
    from handlers.notify import Notifier, watch
    from platform_core.events import PROGRESS

    log = MemoryNotificationLog()
    first, second = ReplyTo("test", "a"), ReplyTo("test", "b", thread="t1")
    assert watch(log, "j1", second) and not watch(log, "j1", second)  # told once, however often it joins
    assert not watch(log, "j1", ReplyTo("test", "b", user="U2"))  # the same chat by another way (a button)
    sender = Recorder()
    notifier = Notifier({"test": sender}, log, None, MemoryIdempotency())
    for epoch in (1, 2):
        notifier(TrainingEvent(PROGRESS, "j1", "t", "colours", first, {"epoch": epoch, "total": 2}))
    notifier(TrainingEvent(FAILED, "j1", "t", "colours", first, {"reason": "out of memory"}))
    notifier(TrainingEvent(FAILED, "j1", "t", "colours", first, {"reason": "out of memory"}))  # redelivered
    for chat in ("a", "b"):
        seen = sender.seen[chat]
        assert seen[0].startswith("Training 'colours' [######------] epoch 1/2")
        assert seen[1].startswith("(edited) Training 'colours' [############] epoch 2/2")
        assert sum(text.startswith("Training 'colours' failed: out of memory") for text in seen) == 1


class SlowRecorder(Recorder):
    """Posting takes a while (Slack's API), so two deliveries of one event overlap."""

    def send(self, reply_to, reply) -> str:
        time.sleep(0.05)
        return super().send(reply_to, reply)


def test_the_final_notice_is_posted_once_when_deliveries_race_or_the_record_of_it_fails() -> None:
    from handlers.notify import Notifier
    from tests.contract.race import race

    log, once, sender = MemoryNotificationLog(), MemoryIdempotency(), SlowRecorder()
    first, second = Notifier({"test": sender}, log, None, once), Notifier({"test": sender}, log, None, once)
    event = TrainingEvent(FAILED, "j1", "t", "colours", ReplyTo("test", "a"), {"reason": "out of memory"})
    race(lambda: first(event), lambda: second(event))  # an SNS retry while the first delivery still posts
    assert sum(text.startswith("Training 'colours' failed") for text in sender.seen["a"]) == 1

    class Broken(MemoryNotificationLog):
        def update(self, job_id: str, **fields) -> dict:
            raise RuntimeError("DynamoDB throttled the write")
    broken, told = Broken(), Recorder()
    notifier = Notifier({"test": told}, broken, None, MemoryIdempotency())
    for _ in range(2):  # posted, then its record failed; the retry finds the notice sent
        notifier(TrainingEvent(FAILED, "j2", "t", "colours", ReplyTo("test", "b"), {"reason": "out of memory"}))
    assert len(told.seen["b"]) == 1


def test_chats_joining_a_job_at_once_are_all_told() -> None:
    from handlers.notify import watch, watchers
    from tests.contract.race import race

    log = MemoryNotificationLog()
    joined = race(*[lambda i=i: watch(log, "j1", ReplyTo("test", f"chat{i}")) for i in range(8)])
    assert joined == [True] * 8 and len(watchers(log, "j1")) == 8


def test_a_text_recipes_encoding_step_is_shown_as_texts_encoded_with_the_time_left() -> None:
    from handlers.notify import progress_reply
    from platform_core.events import PROGRESS

    event = TrainingEvent(PROGRESS, "job-e", "console:ada", "reviews", None,
                          {"epoch": 12, "total": 47, "eta_s": 95.0, "encoded_texts": 768.0, "texts_to_encode": 3000.0})
    assert progress_reply(event).text == "Training 'reviews' [###---------] encoding texts 768/3,000, about 1 min 35 s left"
