"""Atomic outputs: nothing half-written ever sits at the final path, and leftovers of a
killed writer are removed by the next one."""

from __future__ import annotations

import pytest

from compress_recover.io import atomic_dir, atomic_file


def test_a_failed_writer_leaves_neither_output_nor_temporary(tmp_path):
    final = tmp_path / "out" / "checkpoint"
    with pytest.raises(RuntimeError), atomic_dir(final) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert not final.exists() and list(final.parent.iterdir()) == []
    target = tmp_path / "table.csv"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("a,b\n")
        raise RuntimeError("killed")
    assert list(tmp_path.glob("*table.csv*")) == []


def test_leftovers_of_a_killed_writer_are_removed_and_siblings_kept(tmp_path):
    # what SIGKILL leaves: the temporaries, which no finally: clause got to delete
    (tmp_path / ".checkpoint.tmp-abc").mkdir()
    (tmp_path / ".checkpoint.tmp-abc" / "weights").write_text("half")
    (tmp_path / ".table.csv.tmp-xyz").write_text("half")
    (tmp_path / ".other.tmp-keep").write_text("another output's")
    with atomic_dir(tmp_path / "checkpoint") as tmp:
        (tmp / "weights").write_text("whole")
    with atomic_file(tmp_path / "table.csv") as tmp:
        tmp.write_text("a,b\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-keep", "checkpoint", "table.csv"]
    assert (tmp_path / "checkpoint" / "weights").read_text() == "whole"


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                        (0o077, 0o600, 0o700)])
def test_outputs_get_the_users_umask_not_tempfiles_private_mode(tmp_path, umask, file_mode, dir_mode):
    """Results on a shared filesystem are readable by whoever the user's umask lets read them."""
    import os
    import stat

    from compress_recover.io import atomic_dir, atomic_file, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "summary.json", {"a": 1})
        with atomic_file(tmp_path / "figure.png") as tmp:
            tmp.write_bytes(b"png")
        with atomic_dir(tmp_path / "adapter") as tmp:
            (tmp / "weights").write_bytes(b"w")
    finally:
        os.umask(old)
    for name in ("summary.json", "figure.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE((tmp_path / "adapter").stat().st_mode) == dir_mode
