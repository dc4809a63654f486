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
