"""Several trainers on one queue (the in-memory fakes): each machine has its own MachineStatus row and takes the
next queued job; a dead trainer's job is retried by another once its ticket is delivered again; two real
trainer processes drain one queue together on the local backend."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.chat import dispatch
from bot.wiring import build_services
from handlers.commands import Attachment, Command
from platform_core.backend import Backend
from platform_core.config import Settings
from platform_core.jobs import JobState
from tests.fakes import FakeTrainer
from tests.integration.test_trainer_runner import _zip
from tests.memory import MemoryBackend
from trainer_ec2.runner import drain
from trainer_ec2.wiring import build_trainer_context

TENANT = "console:team"
REPO = Path(__file__).resolve().parents[2]


def queue_two(settings: Settings, uploads: dict[str, tuple[str, bytes]], backend: Backend | None = None) -> list[str]:
    services = build_services(settings, launcher=lambda job: None, backend=backend)
    job_ids = []
    for name, (filename, data) in uploads.items():
        assert dispatch(Command("upload", TENANT, "u", (name,), Attachment(filename, data)), services).ok
        reply = dispatch(Command("train", TENANT, "u", (name,)), services)
        assert reply.ok, reply.text
        job_ids.append(reply.data["job_id"])
    return job_ids


def test_a_second_trainer_takes_the_next_job_while_the_first_is_busy() -> None:
    backend = MemoryBackend()
    settings = backend.settings
    job1, job2 = queue_two(settings, {"first": ("a.zip", _zip()), "second": ("b.zip", _zip())}, backend)
    slow, quick = FakeTrainer(), FakeTrainer()
    slow.release.clear()
    m1 = build_trainer_context(replace(settings, machine_id="i-1"), trainers={"image": slow, "sentiment": slow},
                               backend=backend)
    m2 = build_trainer_context(replace(settings, machine_id="i-2"), trainers={"image": quick, "sentiment": quick},
                               backend=backend)
    first = threading.Thread(target=drain, args=(m1,))
    first.start()
    assert slow.started.wait(10)
    assert drain(m2) == 1  # i-1 is busy with the first job: i-2 takes the second
    assert m2.jobs.get(job2).trainer == "i-2" and m2.jobs.get(job2).state == JobState.SUCCEEDED.value
    assert m2.jobs.get(job1).state == JobState.RUNNING.value and m2.lock.get("i-1").State == "Busy"
    slow.release.set()
    first.join(20)
    assert m1.jobs.get(job1).trainer == "i-1" and m1.jobs.get(job1).state == JobState.SUCCEEDED.value
    assert {m1.lock.get("i-1").State, m2.lock.get("i-2").State} == {"Free"}


def test_a_dead_trainers_ticket_comes_back_after_its_visibility_timeout_and_another_trainer_retries() -> None:
    now = [1000.0]
    backend = MemoryBackend(clock=lambda: now[0])
    settings = backend.settings
    job1, job2 = queue_two(settings, {"first": ("a.zip", _zip()), "second": ("b.zip", _zip())}, backend)
    m1 = build_trainer_context(replace(settings, machine_id="i-1"), clock=lambda: now[0], backend=backend)
    ticket = m1.queue.receive(0, m1.visibility_s)  # i-1 takes the first job ...
    assert ticket.job_id == job1 and m1.jobs.claim(job1, "i-1", now[0], m1.lease_s)  # ... and dies mid-job
    quick = FakeTrainer()
    m2 = build_trainer_context(replace(settings, machine_id="i-2"), clock=lambda: now[0], backend=backend,
                               trainers={"image": quick, "sentiment": quick})
    assert drain(m2) == 1  # only the second job: the first one's ticket is still held and its lease runs
    assert m2.jobs.get(job2).state == JobState.SUCCEEDED.value and m2.jobs.get(job1).state == JobState.RUNNING.value
    now[0] += m1.visibility_s + 1
    assert drain(m2) == 1  # the ticket is back, the lease has expired: i-2 retries the job
    retried = m2.jobs.get(job1)
    assert (retried.state, retried.trainer, retried.attempts) == (JobState.SUCCEEDED.value, "i-2", 2)
    assert m2.queue.depth().total == 0


@pytest.mark.slow
def test_two_trainer_processes_drain_one_queue(tmp_path: Path, fashion_mnist) -> None:
    from tools import realdata

    settings = Settings(backend="local", home=tmp_path / "home")
    uploads = {"tops": ("tops.zip", realdata.build_image_zip(["tshirt_top", "trouser"], 10, seed=1)),
               "shoes": ("shoes.zip", realdata.build_image_zip(["sneaker", "sandal"], 10, seed=2))}
    job_ids = queue_two(settings, uploads)
    env = {**os.environ, "MLBOT_BACKEND": "local", "MLBOT_HOME": str(settings.home), "PYTHONPATH": str(REPO)}
    workers = [subprocess.Popen([sys.executable, "-m", "trainer_ec2.worker"], env={**env, "MLBOT_MACHINE_ID": m},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for m in ("i-1", "i-2")]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    ctx = build_trainer_context(settings)
    jobs = [ctx.jobs.get(j) for j in job_ids]
    assert [j.state for j in jobs] == [JobState.SUCCEEDED.value] * 2, [j.error for j in jobs]
    assert {j.trainer for j in jobs} <= {"i-1", "i-2"}
    assert sum(log.count("drained the queue") for log in logs) == 2
    ran = sorted(int(log.rsplit("drained the queue: ", 1)[1].split()[0]) for log in logs)
    assert sum(ran) == 2  # each job trained exactly once between the two processes
    assert {ctx.lock.get(m).State for m in ("i-1", "i-2") if ctx.lock.get(m)} == {"Free"}
