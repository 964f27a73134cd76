"""Upload, datasets and status through the handlers, on the in-memory fakes; what an upload leaves behind
when a store fails half-way, and racing first uploads, on every backend (the fakes, SQLite and moto)."""
from __future__ import annotations

import io
import threading
import zipfile
from dataclasses import replace

from PIL import Image

from handlers.chat import dispatch
from handlers.commands import Attachment, Command
from handlers.services import Services
from platform_core.errors import StorageError
from platform_core.records import TrainingStatus
from tests.backends import on_every_backend

TENANT = "slack:T0001"


def _image_zip(classes: dict[str, int]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for c, (cls, count) in enumerate(classes.items()):
            for i in range(count):
                img = io.BytesIO()
                Image.new("RGB", (40, 40), (c * 40, i * 5, 90)).save(img, "PNG")
                zf.writestr(f"{cls}/photo {i}.png", img.getvalue())
    return out.getvalue()


def _zip_names(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def _zip(classes: dict[str, int] | None = None) -> Attachment:
    return Attachment("pets.zip", _image_zip(classes or {"cat": 10, "dog": 10}))


def _csv() -> Attachment:
    rows = [f"great film number {i},positive" for i in range(100)]
    rows += [f"dull film number {i},negative" for i in range(100)]
    return Attachment("reviews.csv", ("text,label\n" + "\n".join(rows)).encode())


def _upload(services: Services, name: str = "pets", user: str = "U1", tenant: str = TENANT,
            attachment: Attachment | None = None, description: str = ""):
    words = (name, *description.split())
    return dispatch(Command("upload", tenant, user, words, attachment or _zip()), services)


def _blobs(services: Services, tenant: str = TENANT) -> list[str]:
    return services.blobs.list("datasets/")


class FailingRecords:
    """Wraps a repository so that writes fail, as a DynamoDB outage between blob and record would."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create(self, record) -> None:
        raise StorageError("create", record.name, "injected fault")

    def replace(self, record, expected_revision: int) -> None:
        raise StorageError("replace", record.name, "injected fault")


class FailingBlobs:
    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put(self, key, data, content_type="application/octet-stream") -> None:
        raise StorageError("put", key, "injected fault")


def test_valid_zip_is_stored_normalised_under_a_tenant_scoped_key(services: Services) -> None:
    reply = _upload(services, description="cats and dogs")
    assert reply.ok, reply.text
    record = services.records.get(TENANT, "pets")
    assert record is not None and record.kind == "image" and record.class_counts == {"cat": 10, "dog": 10}
    assert record.dataset_path.startswith("datasets/slack:T0001/pets/")
    assert record.training_status == TrainingStatus.NOT_STARTED.value
    assert record.description == "cats and dogs" and record.owner == "U1"
    stored = _zip_names(services.blobs.get(record.dataset_path))
    assert stored == [f"{c}/{i:04d}.png" for c in ("cat", "dog") for i in range(1, 11)]


def test_valid_csv_is_stored_as_utf8_text_label(services: Services) -> None:
    reply = _upload(services, name="reviews", attachment=_csv())
    assert reply.ok, reply.text
    record = services.records.get(TENANT, "reviews")
    body = services.blobs.get(record.dataset_path).decode("utf-8")
    assert body.startswith("text,label\n") and record.class_counts == {"negative": 100, "positive": 100}


def test_rejected_upload_stores_nothing_and_names_every_problem(services: Services) -> None:
    reply = _upload(services, attachment=_zip({"cat": 3, "dog": 10, "eel": 2}))
    assert not reply.ok
    assert "'cat' has 3" in reply.text and "'eel' has 2" in reply.text
    assert services.records.get(TENANT, "pets") is None and _blobs(services) == []


@on_every_backend
def test_record_write_failure_leaves_no_blob_behind(services: Services) -> None:
    broken = replace(services, records=FailingRecords(services.records))
    reply = _upload(broken)
    assert not reply.ok and "nothing was saved" in reply.text
    assert _blobs(services) == [] and services.records.get(TENANT, "pets") is None


@on_every_backend
def test_blob_write_failure_writes_no_record(services: Services) -> None:
    reply = _upload(replace(services, blobs=FailingBlobs(services.blobs)))
    assert not reply.ok
    assert services.records.get(TENANT, "pets") is None


@on_every_backend
def test_reupload_failure_keeps_the_old_version_and_its_blob(services: Services) -> None:
    assert _upload(services).ok
    before = services.records.get(TENANT, "pets")
    reply = _upload(replace(services, records=FailingRecords(services.records)), attachment=_zip({"a": 10, "b": 12}))
    assert not reply.ok
    assert services.records.get(TENANT, "pets") == before
    assert _blobs(services) == [before.dataset_path]


def test_reupload_by_owner_stores_a_new_version_then_drops_the_old_blob(services: Services) -> None:
    assert _upload(services).ok
    old = services.records.get(TENANT, "pets")
    reply = _upload(services, attachment=_zip({"cat": 12, "dog": 11, "eel": 10}))
    assert reply.ok and "version 2" in reply.text
    new = services.records.get(TENANT, "pets")
    assert new.dataset_version == 2 and new.class_counts == {"cat": 12, "dog": 11, "eel": 10}
    assert new.created_at == old.created_at and new.revision == old.revision + 1
    assert _blobs(services) == [new.dataset_path]


def test_same_name_from_another_member_of_the_tenant_is_refused(services: Services) -> None:
    assert _upload(services, user="U1").ok
    reply = _upload(services, user="U2", attachment=_zip({"x": 10, "y": 10}))
    assert not reply.ok and "Only the person who uploaded 'pets' or an admin of this chat can replace it" in reply.text
    assert services.records.get(TENANT, "pets").owner == "U1"
    assert len(_blobs(services)) == 1


def test_reupload_while_training_is_refused(services: Services) -> None:
    assert _upload(services).ok
    record = services.records.get(TENANT, "pets")
    services.records.replace(replace(record, training_status=TrainingStatus.IN_PROGRESS.value,
                                     revision=record.revision + 1), expected_revision=record.revision)
    reply = _upload(services)
    assert not reply.ok and "wait until its training ends" in reply.text


def test_tenants_never_see_each_others_datasets(services: Services) -> None:
    assert _upload(services, tenant="slack:TA").ok
    assert _upload(services, tenant="slack:TB", user="U9", attachment=_csv()).ok  # same name, other tenant
    a = dispatch(Command("datasets", "slack:TA", "U1"), services)
    b = dispatch(Command("datasets", "slack:TB", "U9"), services)
    assert [d["kind"] for d in a.data["datasets"]] == ["image"]
    assert [d["kind"] for d in b.data["datasets"]] == ["sentiment"]
    stranger = dispatch(Command("status", "telegram:42", "U1", ("pets",)), services)
    assert not stranger.ok and "no dataset named 'pets'" in stranger.text


def test_names_are_case_insensitive_and_checked(services: Services) -> None:
    assert _upload(services, name="Pets").ok
    assert dispatch(Command("status", TENANT, "U1", ("PETS",)), services).ok
    bad = _upload(services, name="../etc")
    assert not bad.ok and "not a usable dataset name" in bad.text


def test_upload_without_a_file_or_name_says_how(services: Services) -> None:
    no_file = dispatch(Command("upload", TENANT, "U1", ("pets",)), services)
    assert not no_file.ok and "needs a file" in no_file.text
    no_name = dispatch(Command("upload", TENANT, "U1", (), _zip()), services)
    assert not no_name.ok and no_name.text.startswith("Usage: upload NAME")


@on_every_backend
def test_racing_first_uploads_of_one_name_store_exactly_one(services: Services) -> None:
    replies = []
    barrier = threading.Barrier(4)

    def go(user: str) -> None:
        barrier.wait()
        replies.append(_upload(services, user=user))

    threads = [threading.Thread(target=go, args=(f"U{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.ok for r in replies) == 1
    assert len(_blobs(services)) == 1
    assert services.records.get(TENANT, "pets").dataset_path == _blobs(services)[0]


def test_status_and_datasets_show_the_record(services: Services) -> None:
    assert _upload(services, description="my pets").ok
    status = dispatch(Command("status", TENANT, "U1", ("pets",)), services)
    assert status.ok and "Training Not Started" in status.text and "my pets" in status.text
    listing = dispatch(Command("datasets", TENANT, "U1"), services)
    assert "pets (image, 2 classes, 20 examples)" in listing.text
    empty = dispatch(Command("datasets", "slack:TZ", "U1"), services)
    assert empty.ok and "No datasets yet" in empty.text
