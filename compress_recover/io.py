"""Atomic outputs, manifests and log redirection shared by every stage.

Every stage writes into a temporary sibling of its final path and renames it at the
end, so a killed job never leaves a folder or file that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("compress_recover")


def _remove_stale_temporaries(final: Path) -> None:
    """Delete what an earlier, killed writer of ``final`` left beside it.

    Snakemake runs one job per output at a time, so any temporary sibling of ``final``
    that exists when its job starts belongs to a job that died (SIGKILL, node failure).
    """
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        log.warning("removing %s, left by an interrupted job", stale)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_umask_allows(path: Path, mode: int) -> None:
    """Give a temporary (created 0700/0600 by tempfile) the mode a plain open() or mkdir()
    would: ``mode`` minus the umask, so colleagues on a shared filesystem can read results."""
    os.chmod(path, mode & ~_umask())


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    _as_umask_allows(tmp, 0o777)
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``final``; rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    _as_umask_allows(tmp, 0o666)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    with atomic_file(path) as tmp:
        with tmp.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def safetensors_entries(folder: str | os.PathLike) -> Iterator[dict]:
    """The header entry (``dtype``, ``shape``, ``data_offsets``) of every tensor in a folder's
    safetensors files, read from their headers alone (no tensor is loaded)."""
    import struct

    for f in sorted(Path(folder).glob("*.safetensors")):
        with f.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        yield from (entry for name, entry in header.items() if name != "__metadata__")


def dir_size(path: str | os.PathLike) -> int:
    """Bytes on disk of every regular file under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send stdout, stderr and the ``logging`` tree to ``path`` (a Snakemake log).

    Library progress bars (tqdm, GPTQModel's) write to stderr, so they land in the log.
    An exception is logged with its traceback before it propagates, so the log names
    the culprit even when Snakemake only prints the log's path.
    """
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as fh:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = fh
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            log.exception("step failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err
