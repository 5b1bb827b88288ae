"""Every example runs with its --quick setting."""

import os
import subprocess
import sys

import pytest

from openmm_timewarp import list_models

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
NEEDS_SHIPPED_MODEL = {"alanine_dipeptide.py", "mixing_schedule.py", "explore_then_sample.py", "openmmtools_sequence.py"}


@pytest.mark.parametrize("script", sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py")))
def test_example_runs_quick(script, tmp_path):
    if script in NEEDS_SHIPPED_MODEL:
        assert "alanine-dipeptide" in list_models()
    args = [sys.executable, os.path.join(EXAMPLES, script), "--quick"]
    if script in ("train_your_own.py", "fit_your_own.py"):
        args += ["--out", str(tmp_path / "run")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
