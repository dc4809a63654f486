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


HASHED = ("*.safetensors", "*.jsonl", "*.gguf")  # what a manifest's files_sha256 covers: weights and data


class ChangedFileError(RuntimeError):
    """A file differs from what the job that wrote it recorded in its manifest."""


def _hash_cache_dir() -> Path:
    return Path(os.environ.get("COMPRESS_RECOVER_HASH_CACHE") or Path.home() / ".cache/compress_recover/sha256")


VERIFY_ENV = "COMPRESS_RECOVER_VERIFY"  # "full": rehash every file on every reuse, no cache


def cached_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, hashed once per (path, device, inode, size, mtime, ctime): a verified
    file read again by another job costs a stat, not a read. A write in place changes the
    ctime, which ``touch`` cannot set back, so a flipped byte with its mtime restored is
    hashed again, not taken from the cache. ``COMPRESS_RECOVER_VERIFY=full`` rehashes every
    file every time."""
    path = Path(path).resolve()
    if os.environ.get(VERIFY_ENV, "").strip().lower() == "full":
        return sha256_file(path)
    st = path.stat()
    key = hashlib.sha1(f"{path}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}".encode()
                       ).hexdigest()
    entry = _hash_cache_dir() / key
    if entry.is_file():
        return entry.read_text().strip()
    digest = sha256_file(path)
    try:
        with atomic_file(entry) as tmp:
            tmp.write_text(digest)
    except OSError as err:  # a read-only home: verify without remembering
        log.debug("hash cache not written (%s)", err)
    return digest


def _hashed_files(folder: Path) -> list[str]:
    """The files of ``folder`` (recursively) a manifest's hashes cover (:data:`HASHED`), by relative path."""
    return sorted({str(f.relative_to(folder)) for pattern in HASHED for f in folder.rglob(pattern) if f.is_file()})


def file_hashes(folder: str | os.PathLike, cache: bool = True) -> dict[str, str]:
    """sha256 of the files of ``folder`` a manifest's hashes cover, by relative path
    (``cache=False`` for a temporary folder, whose paths are about to change)."""
    folder = Path(folder)
    digest = cached_sha256 if cache else sha256_file
    return {name: digest(folder / name) for name in _hashed_files(folder)}


def write_manifest(folder: str | os.PathLike, manifest: dict) -> dict:
    """Write a stage's ``manifest.json`` into the folder it describes, with the sha256 of
    its weights and data files (``files_sha256``), which later stages verify on reuse
    (:func:`verify_folder`). Call it last, once every other file is written."""
    manifest = {**manifest, "files_sha256": file_hashes(folder, cache=False)}
    write_json(Path(folder) / "manifest.json", manifest)
    return manifest


def verify_folder(folder: str | os.PathLike, manifest_name: str = "manifest.json") -> int:
    """Check the files a stage's manifest lists (``files_sha256``) against their sha256;
    returns how many were checked. Raises ChangedFileError naming the first file that was
    changed, removed or added since the job wrote it. A folder written before manifests
    recorded hashes is accepted with a warning."""
    folder = Path(folder)
    manifest = folder / manifest_name
    expected = read_json(manifest).get("files_sha256") if manifest.is_file() else None
    if expected is None:
        log.warning("%s: no recorded file hashes to verify (written by an older version?)", folder)
        return 0
    found = set(_hashed_files(folder))
    for name in sorted(set(expected) | found):
        if name not in found:
            raise ChangedFileError(f"{folder / name}: listed in {manifest} but missing; rerun the job that "
                                   "writes this folder (delete it first)")
        if name not in expected:
            raise ChangedFileError(f"{folder / name}: not written by the job that made {folder} (its manifest does "
                                   "not list it); remove it or rerun that job")
        if cached_sha256(folder / name) != expected[name]:
            raise ChangedFileError(f"{folder / name}: its sha256 differs from the one recorded in {manifest}: the "
                                   "file changed after the job wrote it; delete the folder and rerun")
    return len(expected)


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


def shortfall(key: str, what: str, asked: int, served: int) -> dict:
    """A request served with less than asked (``key``: the config key that asked), logged as
    a warning; jobs keep it in their manifest's ``shortfalls`` and the report's data section
    lists it."""
    log.warning("%s: asked for %d %s, served %d (the input holds no more)", key, asked, what, served)
    return {"key": key, "what": what, "asked": int(asked), "served": int(served)}
