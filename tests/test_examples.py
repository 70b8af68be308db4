"""The examples run as a user runs them (a few training steps) and their loss goes down."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEPS = 4


@pytest.mark.parametrize("script", ["heat_pideq.py", "vanderpol_pideq.py"])
def test_example_trains(script):
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / script), str(STEPS)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    losses = {int(step): float(loss) for step, loss in re.findall(r"step (\d+): loss (\S+)", run.stdout)}
    assert set(losses) == {0, STEPS - 1}, run.stdout
    assert losses[STEPS - 1] < 0.9 * losses[0], run.stdout
    assert "NotConvergedWarning" not in run.stderr
    assert re.search(r"final loss \S+, relative L2 error", run.stdout), run.stdout
