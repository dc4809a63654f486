"""Atomic outputs: nothing half-written ever sits at the final path, and leftovers of a
killed writer are removed by the next one."""

from __future__ import annotations

from pathlib import Path

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


def _stage_folder(folder):
    from compress_recover.io import write_manifest

    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "train.jsonl").write_text('{"text": "a"}\n')
    write_manifest(folder, {"stage": "test"})
    return folder


@pytest.mark.parametrize("tamper, message", [
    (lambda f: (f / "model.safetensors").write_bytes(b"other weights"), "sha256 differs"),
    (lambda f: (f / "train.jsonl").unlink(), "missing"),
    (lambda f: (f / "extra.safetensors").write_bytes(b"x"), "not written by the job"),
])
def test_a_stage_folder_is_verified_against_its_manifest_on_reuse(tmp_path, monkeypatch, tamper, message):
    from compress_recover.io import ChangedFileError, verify_folder

    monkeypatch.setenv("COMPRESS_RECOVER_HASH_CACHE", str(tmp_path / "cache"))
    folder = _stage_folder(tmp_path / "stage")
    assert verify_folder(folder) == 2
    tamper(folder)
    with pytest.raises(ChangedFileError, match=message):
        verify_folder(folder)


def _counted_hashes(tmp_path, monkeypatch) -> tuple[Path, list]:
    """A stage folder, and the list every file hash appends its path to."""
    from compress_recover import io

    monkeypatch.setenv("COMPRESS_RECOVER_HASH_CACHE", str(tmp_path / "cache"))
    folder = _stage_folder(tmp_path / "stage")
    hashed = []
    real = io.sha256_file
    monkeypatch.setattr(io, "sha256_file", lambda p, *a: hashed.append(p) or real(p, *a))
    return folder, hashed


def test_a_verified_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    import os

    from compress_recover import io

    folder, hashed = _counted_hashes(tmp_path, monkeypatch)
    io.verify_folder(folder)
    io.verify_folder(folder)
    assert len(hashed) == 2  # two files, each hashed once
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    io.verify_folder(folder)
    assert len(hashed) == 3


def test_a_byte_flipped_in_place_with_its_mtime_restored_is_still_refused(tmp_path, monkeypatch):
    """Bit rot or a careless copy: the file changes, its size and mtime do not. The cache
    key holds the inode and ctime too, which a write in place changes and touch cannot
    restore, so the verification reads the file again and refuses it."""
    import os

    from compress_recover.io import ChangedFileError, verify_folder

    monkeypatch.setenv("COMPRESS_RECOVER_HASH_CACHE", str(tmp_path / "cache"))
    folder = _stage_folder(tmp_path / "stage")
    verify_folder(folder)  # hashed and remembered
    weights = folder / "model.safetensors"
    before = weights.stat()
    with open(weights, "r+b") as f:  # in place: same inode, same size
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = weights.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(ChangedFileError, match=r"model\.safetensors: its sha256 differs"):
        verify_folder(folder)


def test_full_verification_rehashes_every_file_every_time(tmp_path, monkeypatch):
    from compress_recover import io

    monkeypatch.setenv(io.VERIFY_ENV, "full")
    folder, hashed = _counted_hashes(tmp_path, monkeypatch)
    io.verify_folder(folder)
    io.verify_folder(folder)
    assert len(hashed) == 4 and not (tmp_path / "cache").exists()


def test_an_adapter_changed_after_training_is_refused_when_loaded(tiny_checkpoint, text_dir, tmp_path, monkeypatch):
    from compress_recover.io import ChangedFileError
    from compress_recover.recover.load import load_recovered
    from compress_recover.recover.recover import run_recovery
    from compress_recover.runtime import Runtime

    monkeypatch.setenv("COMPRESS_RECOVER_HASH_CACHE", str(tmp_path / "cache"))
    adapter = tmp_path / "adapter"
    run_recovery(checkpoint_dir=str(tiny_checkpoint), out_dir=str(adapter),
                 method_config={"method": "prompt_tuning", "num_virtual_tokens": 2}, key="recovery.methods[1]",
                 text_dir=str(text_dir), steps=1, batch_size=2, seq_len=16,
                 runtime=Runtime(device="cpu", seed=0, threads=1))
    load_recovered(tiny_checkpoint, adapter, device="cpu")  # as written: loads
    weights = adapter / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChangedFileError, match="adapter_model.safetensors"):
        load_recovered(tiny_checkpoint, adapter, device="cpu")
