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


def test_demonstrations_of_a_fact_the_analysis_puts_in_test_are_refused_whichever_task_asks_it(tmp_path):
    import json

    import pandas as pd
    import pytest

    from compress_recover.aggregate.analysis import check_demonstration_facts

    table = pd.DataFrame({"task": ["capitals", "capitals", "city_country"], "doc_id": ["0", "1", "0"],
                          "fact": ["france | paris", "italy | rome", "china | shanghai"],
                          "split": ["dev", "test", "test"]})
    folders = []
    for name, facts in (("own", ["france | paris"]), ("control", ["china | shanghai"])):
        folder = tmp_path / name
        folder.mkdir()
        # a format control's folder for capitals draws from city_country's facts
        (folder / "manifest.json").write_text(json.dumps({"task": "capitals", "dev_facts": facts}))
        folders.append(str(folder))
    check_demonstration_facts(table, folders[:1])
    with pytest.raises(ValueError, match=r"control: few-shot demonstrations were drawn from fact\(s\) \['china"):
        check_demonstration_facts(table, folders)
