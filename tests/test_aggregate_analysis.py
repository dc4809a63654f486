"""aggregate.analysis: which tasks the collateral table flags as untouched by any choice."""

from __future__ import annotations

import pandas as pd

from compress_recover.aggregate.analysis import untouched_tasks


def test_a_task_left_without_dev_questions_by_a_held_out_inverse_counts_as_held_out():
    table = pd.DataFrame({"task": ["element_name", "element_symbol", "capitals", "capitals", "all_knowledge"],
                          "split": ["test", "test", "dev", "test", "dev"]})
    # element_name held out; its inverse element_symbol shares every fact, so it has no dev question either
    assert untouched_tasks(table, ["element_name"]) == {"element_name", "element_symbol"}
    # no dev questions anywhere (dev_fraction 0): only the tasks named as held out
    assert untouched_tasks(table.assign(split="test"), ["element_name"]) == {"element_name"}
