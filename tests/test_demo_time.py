"""benchmarks/demo_time.py records the dtype the timed run was configured with."""

from __future__ import annotations

import sys

import yaml

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import demo_time  # noqa: E402


def test_the_recorded_dtype_is_the_commands_configfile_then_the_workdirs_then_the_checkouts(tmp_path):
    checkout = yaml.safe_load((REPO / "config.yaml").read_text())["dtype"]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"data": {"max_questions": 40}}))  # sets no dtype
    cmd = ["snakemake", "--cores", "all", "--configfile"]
    # a --directory run (make quick's): no config.yaml in the workdir, a study without dtype
    assert demo_time.config_dtype(tmp_path, [*cmd, str(study)]) == checkout
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"dtype": "bfloat16"}))
    assert demo_time.config_dtype(tmp_path, [*cmd, "study.yaml"]) == "bfloat16"  # relative: read in the workdir
    fp32 = tmp_path / "fp32.yaml"
    fp32.write_text(yaml.safe_dump({"dtype": "float32"}))
    assert demo_time.config_dtype(tmp_path, [*cmd, "fp32.yaml"]) == "float32"
    assert demo_time.config_dtype(tmp_path, [*cmd, "fp32.yaml", "--configfile", str(study)]) == "float32"
    assert demo_time.config_dtype(tmp_path, ["snakemake", "--cores", "all"]) == "bfloat16"
