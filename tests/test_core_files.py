"""Atomic writes: the file appears whole or not at all, where and how the user expects."""

import os
import stat
import sys

import numpy as np
import pandas as pd
import pytest

from sktransfer._core.files import atomic_path, atomic_write

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and symlinks")


def _write_bytes(path, data):
    with atomic_write(path) as f:
        f.write(data)


def _write_with_numpy(path, data):
    with atomic_path(path) as tmp:
        np.save(tmp, np.frombuffer(data, dtype=np.uint8))


WRITERS = pytest.mark.parametrize("write", [_write_bytes, _write_with_numpy])


@WRITERS
def test_writes_the_file_and_leaves_nothing_else(tmp_path, write):
    target = tmp_path / "out.npy"
    write(target, b"abc")
    assert target.exists() and os.listdir(tmp_path) == ["out.npy"]


def test_text_mode_and_open_arguments():
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "t.csv")
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write("é\r\n")
    with open(path, "rb") as f:
        assert f.read() == "é\r\n".encode()


def test_path_variant_serves_a_writer_that_picks_the_format_by_extension(tmp_path):
    table = pd.DataFrame({"a": [1, 2]})
    with atomic_path(tmp_path / "t.parquet") as tmp:
        assert os.path.basename(tmp).startswith(".") and tmp.endswith(".parquet")
        table.to_parquet(tmp)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), table)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("variant", ["file", "path"])
def test_any_exception_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, error, variant):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(error)):
        if variant == "file":
            with atomic_write(target) as f:
                f.write(b"half")
                raise error
        else:
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as f:
                    f.write(b"half")
                raise error
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("variant", [atomic_write, atomic_path])
def test_missing_folder_names_the_path_given(tmp_path, variant):
    given = str(tmp_path / "no_such_folder" / "out.bin")
    with pytest.raises(FileNotFoundError, match="no_such_folder") as info:
        with variant(given):
            pass
    assert info.value.filename == given


@pytest.mark.parametrize("variant", [atomic_write, atomic_path])
def test_an_existing_folder_is_refused_by_name(tmp_path, variant):
    folder = tmp_path / "models"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        with variant(folder):
            pass
    assert info.value.filename == str(folder)
    assert os.listdir(tmp_path) == ["models"] and os.listdir(folder) == []


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@WRITERS
def test_final_mode_follows_the_umask(tmp_path, umask, write):
    old = os.umask(umask)
    try:
        write(tmp_path / "out.npy", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.npy").stat().st_mode) == 0o666 & ~umask


@posix_only
def test_a_writer_that_makes_its_own_file_still_gets_the_umask_mode(tmp_path):
    import tempfile

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "w.bin") as tmp:
            fd, other = tempfile.mkstemp(dir=tmp_path)  # 0o600, like a download helper
            os.write(fd, b"x")
            os.close(fd)
            os.replace(other, tmp)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "w.bin").stat().st_mode) == 0o644


@posix_only
@WRITERS
def test_a_symlink_is_written_through_and_kept(tmp_path, write):
    real_dir = tmp_path / "store"
    real_dir.mkdir()
    (real_dir / "model.npy").write_bytes(b"old")
    link = tmp_path / "current.npy"
    link.symlink_to(real_dir / "model.npy")
    write(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real_dir / "model.npy")
    assert (real_dir / "model.npy").read_bytes() != b"old"
    assert sorted(os.listdir(real_dir)) == ["model.npy"]
    assert sorted(os.listdir(tmp_path)) == ["current.npy", "store"]


def test_bad_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    assert os.listdir(tmp_path) == []
