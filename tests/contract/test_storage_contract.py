"""One contract for the storage ports, run against every adapter pair.

local: files under tmp_path and SQLite; aws: S3 and DynamoDB under moto, tables built from
template.yaml; memory: the use-case tests' fakes (tests/memory.py). A behaviour asserted here holds for
whichever backend the platform runs on, and for the fakes the handler tests run on.
"""
from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from moto import mock_aws

from platform_core.adapters.aws import DynamoDatasetRepository, S3BlobStore, make_boto3_client
from platform_core.adapters.local import LocalBlobStore, SqliteDatasetRepository
from platform_core.config import Settings
from platform_core.errors import BlobNotFound, ConcurrentUpdate, DatasetExists, StorageError
from platform_core.ports import BlobStore, DatasetRepository
from platform_core.records import DatasetRecord, TrainingStatus
from tests import infra
from tests.contract.race import race
from tests.conftest import serialise_moto_writes
from tests.memory import MemoryBlobStore, MemoryDatasetRepository


@dataclass
class Stores:
    blobs: BlobStore
    datasets: DatasetRepository


def _local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    yield Stores(LocalBlobStore(tmp_path / "blobs"), SqliteDatasetRepository(tmp_path / "mlbot.db"))


def _memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    yield Stores(MemoryBlobStore(), MemoryDatasetRepository())


def _aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stores]:
    serialise_moto_writes(monkeypatch)
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "3")  # small pages, so listing must paginate
    settings = Settings(backend="aws", bucket="mlbot-test-datasets", region="us-east-1")
    with mock_aws():
        dynamodb = make_boto3_client("dynamodb", settings)
        s3 = make_boto3_client("s3", settings)
        names = infra.create_storage(dynamodb, s3, bucket=settings.bucket)
        yield Stores(
            S3BlobStore(bucket=names["DatasetBucket"], client=s3),
            DynamoDatasetRepository(table_name=names["DatasetTable"], client=dynamodb),
        )


Backend = Callable[[Path, pytest.MonkeyPatch], Iterator[Stores]]
BACKENDS: dict[str, Backend] = {"local": _local, "aws": _aws, "memory": _memory}


@pytest.fixture(params=sorted(BACKENDS))
def stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stores]:
    if request.param == "aws":
        request.getfixturevalue("aws_credentials")
    yield from BACKENDS[request.param](tmp_path, monkeypatch)


def make_record(tenant: str = "slack:T001", name: str = "digits", **changes: Any) -> DatasetRecord:
    base = DatasetRecord(
        tenant=tenant,
        name=name,
        owner="U123",
        kind="image",
        dataset_path=f"datasets/{tenant}/{name}/v1.zip",
        created_at="2024-05-01T10:00:00+00:00",
        updated_at="2024-05-01T10:00:00+00:00",
    )
    return replace(base, **changes)


# ---- BlobStore -------------------------------------------------------------------------------


def test_a_stored_blob_reads_back_byte_for_byte(stores: Stores) -> None:
    data = bytes(range(256)) * 64
    stores.blobs.put("datasets/t/digits/v1.zip", data, "application/zip")
    assert stores.blobs.get("datasets/t/digits/v1.zip") == data
    assert stores.blobs.exists("datasets/t/digits/v1.zip")


def test_an_empty_blob_is_stored_and_exists(stores: Stores) -> None:
    stores.blobs.put("models/t/empty.bin", b"")
    assert stores.blobs.get("models/t/empty.bin") == b""
    assert stores.blobs.exists("models/t/empty.bin")


def test_size_is_the_stored_length_and_a_missing_key_has_none(stores: Stores) -> None:
    stores.blobs.put("predict-inputs/t/photo.bin", b"x" * 1234)
    stores.blobs.put("models/t/empty.bin", b"")
    assert stores.blobs.size("predict-inputs/t/photo.bin") == 1234
    assert stores.blobs.size("models/t/empty.bin") == 0
    with pytest.raises(BlobNotFound):
        stores.blobs.size("predict-inputs/t/missing.bin")
    with pytest.raises(BlobNotFound):
        stores.blobs.size("predict-inputs/t")  # a prefix, not a blob


def test_putting_an_existing_key_replaces_its_bytes(stores: Stores) -> None:
    stores.blobs.put("a/key", b"first version, longer")
    stores.blobs.put("a/key", b"second")
    assert stores.blobs.get("a/key") == b"second"
    assert stores.blobs.list("a/") == ["a/key"]


def test_getting_a_missing_key_raises_blob_not_found_with_the_key(stores: Stores) -> None:
    with pytest.raises(BlobNotFound) as caught:
        stores.blobs.get("datasets/t/nothing-here.zip")
    assert caught.value.key == "datasets/t/nothing-here.zip"
    assert not stores.blobs.exists("datasets/t/nothing-here.zip")


def test_a_key_that_only_prefixes_other_keys_is_not_a_blob(stores: Stores) -> None:
    stores.blobs.put("models/t/digits/model.onnx", b"onnx")
    assert not stores.blobs.exists("models/t/digits")
    with pytest.raises(BlobNotFound):
        stores.blobs.get("models/t/digits")


def test_deleting_a_blob_removes_it_and_only_it(stores: Stores) -> None:
    stores.blobs.put("d/one", b"1")
    stores.blobs.put("d/two", b"2")
    stores.blobs.delete("d/one")
    assert not stores.blobs.exists("d/one")
    with pytest.raises(BlobNotFound):
        stores.blobs.get("d/one")
    assert stores.blobs.list("d/") == ["d/two"]


def test_deleting_a_missing_key_is_not_an_error(stores: Stores) -> None:
    stores.blobs.delete("never/stored")
    stores.blobs.put("once/stored", b"x")
    stores.blobs.delete("once/stored")
    stores.blobs.delete("once/stored")
    assert stores.blobs.list("") == []


def test_list_returns_the_keys_under_the_prefix_sorted(stores: Stores) -> None:
    for key in ("datasets/t1/b/z.png", "datasets/t1/a.zip", "datasets/t1/b/a.png", "datasets/t10/x",
                "datasets/t2/y", "models/t1/m.onnx"):
        stores.blobs.put(key, key.encode())
    assert stores.blobs.list("datasets/t1/") == [
        "datasets/t1/a.zip", "datasets/t1/b/a.png", "datasets/t1/b/z.png"
    ]


def test_list_prefix_is_a_string_prefix_not_a_folder(stores: Stores) -> None:
    for key in ("datasets/t1/a", "datasets/t10/b", "datasets/t2/c"):
        stores.blobs.put(key, b".")
    assert stores.blobs.list("datasets/t1") == ["datasets/t1/a", "datasets/t10/b"]
    assert stores.blobs.list("datasets/t1/a") == ["datasets/t1/a"]
    assert stores.blobs.list("") == ["datasets/t1/a", "datasets/t10/b", "datasets/t2/c"]


def test_list_returns_every_key_across_pages(stores: Stores) -> None:
    keys = [f"many/{i:02d}" for i in range(10)]
    for key in reversed(keys):
        stores.blobs.put(key, b".")
    assert stores.blobs.list("many/") == keys


def test_list_of_an_unused_prefix_is_empty(stores: Stores) -> None:
    stores.blobs.put("datasets/t1/a", b".")
    assert stores.blobs.list("datasets/nobody/") == []
    assert stores.blobs.list("datasets/t1/a/") == []


# ---- DatasetRepository -----------------------------------------------------------------------


def test_a_created_record_reads_back_equal_with_floats_nones_and_class_counts(
    stores: Stores,
) -> None:
    record = make_record(
        description="hand-written digits, ünïcode ok",
        class_counts={"cat": 12, "dog": 100, "bird with space": 10},
        training_status=TrainingStatus.SUCCESSFUL.value,
        model_path="models/t/digits/3/model.onnx",
        vocab_path=None,
        model_version=3,
        training_accuracy=0.9333333333333333,
        validation_accuracy=1.0,
        size_bytes=123_456_789,
        revision=7,
    )
    stores.datasets.create(record)
    stored = stores.datasets.get(record.tenant, record.name)
    assert stored == record
    assert type(stored.training_accuracy) is float and type(stored.validation_accuracy) is float
    assert type(stored.model_version) is int and type(stored.size_bytes) is int
    assert all(type(count) is int for count in stored.class_counts.values())


def test_a_new_record_round_trips_defaults_nones_empty_string_and_empty_map(
    stores: Stores,
) -> None:
    record = make_record(description="", class_counts={})
    stores.datasets.create(record)
    stored = stores.datasets.get(record.tenant, record.name)
    assert stored == record
    assert stored.model_path is None and stored.training_accuracy is None


def test_getting_a_missing_record_returns_none(stores: Stores) -> None:
    assert stores.datasets.get("slack:T001", "nothing") is None


def test_creating_a_taken_name_raises_dataset_exists_and_keeps_the_first(stores: Stores) -> None:
    first = make_record(description="first")
    stores.datasets.create(first)
    with pytest.raises(DatasetExists) as caught:
        stores.datasets.create(make_record(description="second", owner="U999"))
    assert caught.value.name == "digits"
    assert stores.datasets.get(first.tenant, first.name) == first


def test_replace_with_the_current_revision_stores_the_new_record(stores: Stores) -> None:
    stores.datasets.create(make_record())
    updated = make_record(training_status=TrainingStatus.QUEUED.value, revision=2)
    stores.datasets.replace(updated, expected_revision=1)
    assert stores.datasets.get("slack:T001", "digits") == updated
    again = replace(updated, training_accuracy=0.5, revision=3)
    stores.datasets.replace(again, expected_revision=2)
    assert stores.datasets.get("slack:T001", "digits") == again


def test_replace_with_a_stale_revision_raises_concurrent_update_and_changes_nothing(
    stores: Stores,
) -> None:
    stores.datasets.create(make_record())
    current = make_record(description="won", revision=2)
    stores.datasets.replace(current, expected_revision=1)
    with pytest.raises(ConcurrentUpdate) as caught:
        stores.datasets.replace(make_record(description="lost", revision=2), expected_revision=1)
    assert caught.value.name == "digits"
    assert stores.datasets.get("slack:T001", "digits") == current


def test_replace_of_a_missing_record_raises_concurrent_update_and_creates_nothing(
    stores: Stores,
) -> None:
    with pytest.raises(ConcurrentUpdate):
        stores.datasets.replace(make_record(revision=2), expected_revision=1)
    assert stores.datasets.get("slack:T001", "digits") is None
    assert stores.datasets.list("slack:T001") == []


def test_list_returns_the_tenants_records_sorted_by_name(stores: Stores) -> None:
    for name in ("zebra", "apples", "mnist-2", "mnist_1"):
        stores.datasets.create(make_record(name=name))
    assert [r.name for r in stores.datasets.list("slack:T001")] == [
        "apples", "mnist-2", "mnist_1", "zebra"
    ]
    assert stores.datasets.list("slack:T001")[0] == make_record(name="apples")


def test_list_returns_every_record_even_past_one_result_page(stores: Stores) -> None:
    # Three items of ~380 KB exceed DynamoDB's 1 MB query page.
    records = [make_record(name=f"big-{i}", description=str(i) * 380_000) for i in range(3)]
    for record in records:
        stores.datasets.create(record)
    assert stores.datasets.list("slack:T001") == records


def test_list_and_get_never_return_another_tenants_record_of_the_same_name(stores: Stores) -> None:
    mine = make_record(tenant="slack:T001", owner="U1", description="mine")
    theirs = make_record(tenant="telegram:-100200", owner="42", description="theirs")
    stores.datasets.create(mine)
    stores.datasets.create(theirs)
    stores.datasets.create(make_record(tenant="slack:T0011", name="other"))
    assert stores.datasets.get("slack:T001", "digits") == mine
    assert stores.datasets.get("telegram:-100200", "digits") == theirs
    assert stores.datasets.list("slack:T001") == [mine]
    assert stores.datasets.list("telegram:-100200") == [theirs]
    assert stores.datasets.list("slack:T00") == []
    assert stores.datasets.get("slack:T002", "digits") is None


def test_replacing_or_deleting_one_tenants_record_leaves_the_other_tenants_alone(
    stores: Stores,
) -> None:
    mine, theirs = make_record(tenant="slack:A"), make_record(tenant="slack:B")
    stores.datasets.create(mine)
    stores.datasets.create(theirs)
    stores.datasets.replace(replace(mine, description="changed", revision=2), expected_revision=1)
    stores.datasets.delete("slack:A", "digits")
    assert stores.datasets.get("slack:A", "digits") is None
    assert stores.datasets.get("slack:B", "digits") == theirs


def test_delete_removes_the_record_and_a_missing_one_is_not_an_error(stores: Stores) -> None:
    stores.datasets.create(make_record())
    stores.datasets.delete("slack:T001", "digits")
    assert stores.datasets.get("slack:T001", "digits") is None
    stores.datasets.delete("slack:T001", "digits")
    stores.datasets.delete("slack:T001", "never-existed")


def test_a_deleted_name_can_be_created_again(stores: Stores) -> None:
    stores.datasets.create(make_record(description="old"))
    stores.datasets.delete("slack:T001", "digits")
    fresh = make_record(description="new")
    stores.datasets.create(fresh)
    assert stores.datasets.get("slack:T001", "digits") == fresh




def test_two_threads_creating_the_same_name_exactly_one_wins(stores: Stores) -> None:
    for round_ in range(5):
        name = f"race-{round_}"
        a, b = make_record(name=name, owner="A"), make_record(name=name, owner="B")
        outcomes = race(lambda: stores.datasets.create(a), lambda: stores.datasets.create(b))
        assert sum(o is None for o in outcomes) == 1, outcomes
        assert sum(isinstance(o, DatasetExists) for o in outcomes) == 1, outcomes
        winner = a if outcomes[0] is None else b
        assert stores.datasets.get("slack:T001", name) == winner


def test_two_threads_replacing_from_the_same_revision_exactly_one_wins(stores: Stores) -> None:
    stores.datasets.create(make_record())
    a = make_record(description="A", revision=2)
    b = make_record(description="B", revision=2)
    outcomes = race(
        lambda: stores.datasets.replace(a, expected_revision=1),
        lambda: stores.datasets.replace(b, expected_revision=1),
    )
    assert sum(o is None for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, ConcurrentUpdate) for o in outcomes) == 1, outcomes
    assert stores.datasets.get("slack:T001", "digits") == (a if outcomes[0] is None else b)


# ---- adapter-specific promises behind the contract --------------------------------------------


def _create_names(path: str, owner: str, count: int, start: Any, results: Any) -> None:
    repo = SqliteDatasetRepository(Path(path))
    start.wait()
    won = []
    for i in range(count):
        try:
            repo.create(make_record(name=f"n{i}", owner=owner))
            won.append(i)
        except DatasetExists:
            pass
    results.put(won)


@pytest.mark.slow  # two spawned processes
def test_two_processes_opening_one_new_sqlite_file_each_name_is_created_exactly_once(
    tmp_path: Path,
) -> None:
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    path = str(tmp_path / "shared.sqlite3")
    workers = [
        context.Process(target=_create_names, args=(path, owner, 50, start, results))
        for owner in ("A", "B")
    ]
    for worker in workers:
        worker.start()
    start.set()
    won = [results.get(timeout=60), results.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(won[0] + won[1]) == list(range(50))
    assert len(SqliteDatasetRepository(Path(path)).list("slack:T001")) == 50


def test_aws_adapters_build_a_default_client_on_first_use_not_at_construction(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")  # building a client now would fail: no region
    blobs = S3BlobStore(bucket="lazy-bucket")
    datasets = DynamoDatasetRepository(table_name="Dataset")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        settings = Settings(region="us-east-1")
        dynamodb, s3 = make_boto3_client("dynamodb", settings), make_boto3_client("s3", settings)
        infra.create_storage(dynamodb, s3, "lazy-bucket")
        blobs.put("k", b"v")
        datasets.create(make_record())
        assert blobs.get("k") == b"v"
        assert datasets.get("slack:T001", "digits") == make_record()


def test_a_missing_bucket_or_table_surfaces_as_storage_error_not_a_boto_error(
    aws_credentials: None,
) -> None:
    with mock_aws():
        settings = Settings(region="us-east-1")
        blobs = S3BlobStore(bucket="no-such-bucket", client=make_boto3_client("s3", settings))
        datasets = DynamoDatasetRepository(
            table_name="NoSuchTable", client=make_boto3_client("dynamodb", settings)
        )
        for action in (lambda: blobs.put("k", b"v"), lambda: blobs.list(""),
                       lambda: datasets.create(make_record()), lambda: datasets.list("t")):
            with pytest.raises(StorageError) as caught:
                action()
            assert caught.value.cause in ("NoSuchBucket", "ResourceNotFoundException")
        with pytest.raises(StorageError) as caught:
            blobs.get("k")
        assert not isinstance(caught.value, BlobNotFound)


def test_an_unusable_sqlite_path_surfaces_as_storage_error(tmp_path: Path) -> None:
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(StorageError) as caught:
        SqliteDatasetRepository(tmp_path / "a-directory")
    assert caught.value.operation == "init"
