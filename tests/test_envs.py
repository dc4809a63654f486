"""The per-step conda envs, checked offline: shape, channels, conda MatchSpecs (py-rattler),
pip pins equal to the project's, and every rule pointing at one of them."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from rattler import MatchSpec

from conftest import REPO

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
# What only the Snakemake process itself needs (it builds the DAG, submits jobs): no step's env.
DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep",
               "jsonschema"}


def project_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        req = Requirement(dep)
        (spec,) = req.specifier
        assert spec.operator == "==", f"pyproject.toml: {dep} is not pinned with =="
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def load_env(path: Path) -> tuple[dict, list[str], list[str]]:
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) == 1, f"{path.name}: expected one pip: section"
    return env, conda, pip_sections[0]


def test_there_is_an_env_per_step():
    assert {p.stem for p in ENV_FILES} == {"download", "data", "compress", "recover", "evaluate", "aggregate"}


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_shape_and_channels(path):
    env, conda, _ = load_env(path)
    assert set(env) == {"name", "channels", "dependencies"}, f"{path.name}: keys {sorted(env)}"
    assert env["name"] == f"compress-recover-{path.stem}"
    channels = env["channels"]
    assert isinstance(channels, list) and channels and all(isinstance(c, str) for c in channels)
    # conda-forge only: Anaconda's 'defaults' channel is excluded explicitly (licence terms).
    assert channels[0] == "conda-forge" and "nodefaults" in channels and "defaults" not in channels, channels
    assert all(isinstance(d, (str, dict)) for d in env["dependencies"])


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_conda_specs_are_pinned_matchspecs(path):
    _, conda, _ = load_env(path)
    names = {}
    for dep in conda:
        spec = MatchSpec(dep)  # raises on a spec conda cannot read
        assert spec.version is not None, f"{path.name}: conda spec {dep!r} has no version"
        assert re.fullmatch(r"[a-z0-9_.-]+=[0-9][0-9.]*", dep), f"{path.name}: {dep!r} is not name=version"
        names[spec.name.normalized] = str(spec.version)
    assert names.keys() == {"python", "pip"}, f"{path.name}: conda specs {sorted(names)}"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert names["python"].startswith("3.11") and ">=3.11" in requires, (names["python"], requires)


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_pip_specs_match_the_project_pins(path):
    _, _, pip = load_env(path)
    pins = project_pins()
    seen = set()
    for line in pip:
        assert not line.startswith("-"), f"{path.name}: pip option {line!r} (the package is not installed in envs)"
        req = Requirement(line)
        (spec,) = req.specifier
        name = canonicalize_name(req.name)
        assert spec.operator == "==", f"{path.name}: {line} is not pinned with =="
        assert name not in seen, f"{path.name}: {name} twice"
        seen.add(name)
        # Direct dependencies must equal pyproject.toml; a transitive one pinned here must
        # equal the version resolved in the tested environment.
        expected = pins.get(name) or metadata.version(name)
        assert spec.version == expected, f"{path.name}: {line}, but the project pins {name}=={expected}"


def test_every_dependency_lives_in_some_step_env():
    in_envs = {canonicalize_name(Requirement(line).name) for p in ENV_FILES for line in load_env(p)[2]}
    missing = set(project_pins()) - in_envs - {canonicalize_name(n) for n in DRIVER_ONLY}
    assert not missing, f"pinned in pyproject.toml but in no envs/*.yaml: {sorted(missing)}"


def test_every_rule_uses_an_existing_env_and_every_env_is_used():
    used = set()
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for match in re.finditer(r"conda:\s*\n\s*\"([^\"]+)\"", smk.read_text()):
            target = (smk.parent / match.group(1)).resolve()
            assert target.is_file(), f"{smk.name}: conda env {match.group(1)} does not exist"
            used.add(target)
    assert used == {p.resolve() for p in ENV_FILES}


def test_rule_scripts_find_the_package_without_installing_it():
    link = REPO / "workflow_scripts" / "compress_recover"
    assert link.is_symlink() and link.resolve() == (REPO / "compress_recover").resolve()
