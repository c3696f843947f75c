"""Trees a hostile model can build in its folder, walked and removed at any depth
(``orchestrator/trees.py``): in-process, on real folders."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import trees
from orchestrator.errors import Unprocessable
from orchestrator.packaging.unpack import MAX_DEPTH, safe_extract
from orchestrator.runs.disk import usage_bytes

DEPTH = 2500
"""Past Python's recursion limit, and past PATH_MAX (4,096 bytes) in one-letter folders."""
MIB = 1024 * 1024
NOBODY = 65534


@pytest.fixture(autouse=True)
def _no_deep_tree_left(tmp_path: Path) -> Iterator[None]:
    """pytest removes old temporary folders with shutil.rmtree, which fails on what these
    tests make: nothing deep may outlive a test."""
    yield
    trees.remove(tmp_path)


def deep_tree(top: Path, depth: int = DEPTH, data: bytes = b"x") -> None:
    """``top/d/d/.../d/f`` ``depth`` levels down, made as a model makes it: by handles."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            child = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as fh:
            fh.write(data)
    finally:
        os.close(fd)


def test_shutil_fails_where_trees_removes(tmp_path: Path) -> None:
    deep_tree(tmp_path / "a")
    with pytest.raises(RecursionError):  # what a run's delete and the start-up sweep met
        shutil.rmtree(tmp_path / "a", ignore_errors=True)
    deep_tree(tmp_path / "b")
    trees.remove(tmp_path / "b")
    assert not (tmp_path / "b").exists()
    trees.remove(tmp_path / "missing")  # nothing there: fine


def test_usage_counts_files_past_path_max(tmp_path: Path) -> None:
    deep_tree(tmp_path / "t", data=b"x" * (3 * MIB))
    assert usage_bytes([tmp_path / "t"]) >= 3 * MIB


def test_regular_files_give_paths_relative_to_the_top(tmp_path: Path) -> None:
    (tmp_path / "t/a/b").mkdir(parents=True)
    (tmp_path / "t/a/b/f").write_text("1")
    (tmp_path / "t/g").write_text("22")
    (tmp_path / "t/link").symlink_to("/etc/passwd")
    found = {f"{folder.path}/{name}".lstrip("/"): info.st_size
             for folder, name, info in trees.regular_files(tmp_path / "t")}  # fmt: skip
    assert found == {"a/b/f": 1, "g": 2}


def test_links_are_removed_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    (tmp_path / "t/a").mkdir(parents=True)
    (tmp_path / "t/a/out").symlink_to(outside)
    (tmp_path / "t/file-link").symlink_to(outside / "keep")
    trees.remove(tmp_path / "t")
    assert not (tmp_path / "t").exists()
    assert (outside / "keep").read_text() == "mine"
    (tmp_path / "top-link").symlink_to(outside)
    trees.remove(tmp_path / "top-link")  # the link goes, not what it points at
    assert not (tmp_path / "top-link").is_symlink() and (outside / "keep").exists()


def test_a_folder_moved_mid_walk_ends_the_walk_inside_the_tree(tmp_path: Path) -> None:
    """Climbing back by ``..`` checks where it lands: a moved folder cannot take the walk
    (and a removal) into the folder above the tree."""
    (tmp_path / "t/a/b").mkdir(parents=True)
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling/precious").write_text("keep")
    walk = trees.folders_bottom_up(tmp_path / "t")
    first = next(walk)
    assert first.path == "a/b"
    os.rename(tmp_path / "t/a/b", tmp_path / "b")  # b now sits beside the tree
    with pytest.raises(trees.TreeMoved):
        next(walk)
    assert (tmp_path / "sibling/precious").read_text() == "keep"


def test_folders_a_model_locked_are_opened_and_removed() -> None:
    """A model of the daemon's own uid (a daemon not run as root) may ``chmod 000`` its
    folders; the walk gives the owner's permissions back. Run as a plain uid, since
    root reads folders whatever their mode."""
    top = Path(tempfile.mkdtemp(prefix="orch-locked-"))
    try:
        if os.geteuid() == 0:
            os.chown(top, NOBODY, NOBODY)
            pid = os.fork()
            if pid == 0:  # the child: a plain uid for the body, its verdict as exit status
                code = 1
                try:
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                    _lock_measure_remove(top)
                    code = 0
                finally:
                    os._exit(code)
            assert os.waitpid(pid, 0)[1] == 0, "the walk failed on locked folders"
        else:
            _lock_measure_remove(top)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _lock_measure_remove(top: Path) -> None:
    (top / "t/a/b").mkdir(parents=True)
    (top / "t/a/b/f").write_bytes(b"x" * MIB)
    (top / "t/a/b").chmod(0)
    (top / "t/a").chmod(0o600)  # listable, not searchable
    assert usage_bytes([top / "t"]) >= MIB
    trees.remove(top / "t")
    assert not (top / "t").exists()


def test_a_package_nested_deeper_than_the_cap_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "deep.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("app.yaml", "a/" * (MAX_DEPTH + 1) + "f"):
            info = tarfile.TarInfo(name)
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(Unprocessable, match=f"levels deep; at most {MAX_DEPTH}"):
        safe_extract(archive, tmp_path / "out", max_bytes=MIB, max_files=1000)
    assert not (tmp_path / "out").exists()
