"""LocalBlobStore rejects any key that could name a file outside its root, before touching disk."""
from __future__ import annotations

from pathlib import Path

import pytest

from platform_core.adapters.local import LocalBlobStore, check_key
from platform_core.errors import StorageError

BAD_KEYS = [
    "",
    "../escape",
    "a/../../escape",
    "a/..",
    "..",
    ".",
    "a/./b",
    "/etc/passwd",
    "/",
    "a\\b",
    "..\\escape",
    "C:\\Windows\\win.ini",
    "a//b",
    "a/",
    "trailing/slash/",
    "nul\x00byte",
    "a/.~tmp-in-flight",
]


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "root")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_operation_rejects_a_key_that_could_leave_the_root(
    store: LocalBlobStore, tmp_path: Path, key: str
) -> None:
    with pytest.raises(ValueError):
        store.put(key, b"payload")
    with pytest.raises(ValueError):
        store.get(key)
    with pytest.raises(ValueError):
        store.exists(key)
    with pytest.raises(ValueError):
        store.delete(key)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("prefix", ["../", "a/../../", "/etc/", "..\\", "a\\b"])
def test_list_rejects_a_prefix_that_could_leave_the_root(
    store: LocalBlobStore, prefix: str
) -> None:
    with pytest.raises(ValueError):
        store.list(prefix)


@pytest.mark.parametrize(
    "key",
    ["a", "datasets/slack:T001/digits/v1.zip", "dots..inside/x", "..hidden/file", "a/b.c/d-e_f"],
)
def test_ordinary_keys_are_accepted_and_stay_under_the_root(
    store: LocalBlobStore, tmp_path: Path, key: str
) -> None:
    store.put(key, b"ok")
    assert store.get(key) == b"ok"
    assert (tmp_path / "root" / Path(*key.split("/"))).read_bytes() == b"ok"


def test_check_key_splits_a_valid_key_into_its_parts() -> None:
    assert check_key("models/t/digits/model.onnx") == ["models", "t", "digits", "model.onnx"]


def test_a_key_that_is_not_a_string_is_rejected() -> None:
    with pytest.raises(ValueError):
        check_key(None)  # type: ignore[arg-type]


def test_an_interrupted_write_leaves_no_temp_file_and_no_listed_key(
    store: LocalBlobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("a/kept", b"old")

    def fail(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("platform_core.adapters.local.os.replace", fail)
    with pytest.raises(StorageError):
        store.put("a/kept", b"new")
    assert store.get("a/kept") == b"old"
    assert sorted(p.name for p in (tmp_path / "root" / "a").iterdir()) == ["kept"]
    assert store.list("") == ["a/kept"]
