"""The shared per-state table and the JSON conversion."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from openmm_timewarp.lab.analysis.states import StateFigures, first_visit, frame_times, state_table
from openmm_timewarp.lab.jsonio import dumps_json, to_jsonable


def test_first_visit_is_the_recorded_time_of_the_first_frame():
    indicator = np.array([False, False, True, True])
    assert first_visit(indicator, 0.5) == 1.5  # frame 2 at (2 + 1) x 0.5
    assert first_visit(indicator, frame_times(4, 0.5)) == 1.5
    assert first_visit(indicator, np.array([0.1, 0.2, 0.7, 0.9])) == 0.7
    assert first_visit(np.zeros(4, bool), 0.5) is None


def test_state_table_rows_and_entries():
    a = np.array([True] * 5 + [False] * 5)
    table = state_table({"A": a, "B": ~a, "C": np.zeros(10, bool)}, 2, frame_ps=2.0, wall_s=20.0,
                        reference_states={"A": {"population": 0.5, "stderr": 0.1},
                                          "C": {"population": 0.0, "stderr": 0.0}})
    assert isinstance(table["A"], StateFigures) and table["A"].population == 0.5
    assert table["B"].first_visit_ps == 12.0 and table["B"].first_visit_wall_s == 12.0
    assert table["A"].error_kT == pytest.approx(0.0) and table["C"].error_kT is None
    entry = table["B"].to_dict()
    assert entry["ess_window_per_s"] == pytest.approx(entry["ess_window"] / 20.0) and "reference" not in entry
    assert StateFigures.from_dict(table["A"].to_dict()) == table["A"]
    weighted = state_table({"A": a}, 2, wall_s=10.0, log_weights=np.linspace(0.0, 1.0, 10), lengths=[5, 5])
    assert set(weighted["A"].to_dict()) == {"population", "stderr", "ess_block", "ess_block_per_s"}


def test_to_jsonable():
    value = {1: np.int64(3), "x": np.array([1.0, np.inf]), "p": Path("a/b"), "row": StateFigures(0.5, 0.1, 2.0),
             "t": (np.bool_(True), np.float32(np.nan))}
    assert to_jsonable(value) == {"1": 3, "x": [1.0, "inf"], "p": "a/b",
                                  "row": {"population": 0.5, "stderr": 0.1, "ess_block": 2.0}, "t": [True, "nan"]}
    assert math.isnan(json.loads(dumps_json({"v": float("nan")}, nonfinite="number"))["v"])
    with pytest.raises(ValueError):
        to_jsonable(1.0, nonfinite="null")
