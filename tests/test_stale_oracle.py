"""Verdicts that no stale or tampered oracle cache can flip, through the whole run.

A cached answer may make a cell ok; it may never alone make a claimed-exact cell wrong. And
an answer is keyed by the instance's numbers, so whatever changes them (a weights file, an
edited problem file) is graded against a fresh answer.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import deqbench
from deqbench.harness.oracle import CACHE_ENV, OracleCacheWarning
from deqbench.harness.results import rows as results

pytestmark = pytest.mark.usefixtures("isolated_registries")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "oracle-cache"
    monkeypatch.setenv(CACHE_ENV, str(directory))
    return directory


def statuses(rows) -> dict[str, str]:
    return results.cell_statuses(rows).set_index("cell")["status"].to_dict()


def entries(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file())


def test_a_byte_flipped_or_garbage_cache_entry_changes_no_verdict(cache_dir):
    matrix = ("analytic,implicit-vjp", "tanh", "jvp2")
    clean = statuses(deqbench.run(*matrix, quick=True, repeats=1))
    assert clean == {"analytic/tanh/jvp2": "ok", "implicit-vjp/tanh/jvp2": "wrong"}
    (entry,) = entries(cache_dir)
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    for damaged in (bytes(data), b"garbage, not a cache entry"):
        entry.write_bytes(damaged)
        with pytest.warns(OracleCacheWarning, match=str(entry)):
            assert statuses(deqbench.run(*matrix, quick=True, repeats=1)) == clean


WEIGHTS_PROBLEM = '''
import torch
from deqbench.problems.tanh import TanhDEQ

class WeightsFromFile(TanhDEQ):
    """tanh, with W read from a weights file next to this one (the file can change)."""
    name = "test-weights-from-file"

    def build(self, generator, **size):
        super().build(generator, **size)
        path = __file__.replace(".py", ".pt")
        self.theta["W"] = torch.load(path).to(self.dtype)
'''


def test_a_changed_weights_file_is_graded_against_a_fresh_answer(cache_dir, tmp_path):
    source = tmp_path / "weights_problem.py"
    source.write_text(WEIGHTS_PROBLEM)
    problem = f"{source}:WeightsFromFile"
    generator = torch.Generator().manual_seed(1)
    for scale in (0.5, 0.8):
        W = torch.randn(8, 8, generator=generator, dtype=torch.float64)
        torch.save(scale * W / torch.linalg.matrix_norm(W, ord=2), tmp_path / "weights_problem.pt")
        rows = deqbench.run("analytic,unrolled", problem, "forward,jvp2", quick=True, repeats=1)
        assert set(statuses(rows).values()) == {"ok"}, statuses(rows)
    assert len(entries(cache_dir)) == 4  # two instances x two queries: nothing answered stale


EDITABLE_PROBLEM = """
import torch
from deqbench.problems.tanh import TanhDEQ

class Editable(TanhDEQ):
    name = "test-editable"

    def f(self, theta, x, z):
        return torch.tanh(SCALE * z @ theta["W"].T + x @ theta["U"].T + theta["b"])
"""


def test_a_problem_file_edited_between_two_api_calls_is_run_and_graded_as_it_is_now(cache_dir, tmp_path):
    source = tmp_path / "editable_problem.py"
    problem = f"{source}:Editable"
    answers = []
    for scale in ("1.0", "0.5"):
        source.write_text(f"SCALE = {scale}\n" + textwrap.dedent(EDITABLE_PROBLEM))
        rows = deqbench.run("analytic", problem, "forward,pinn_grad", quick=True, repeats=1)
        assert statuses(rows) == {
            "analytic/test-editable/forward": "ok",
            "analytic/test-editable/pinn_grad": "ok",
        }
        answers.append(rows)
    assert len(entries(cache_dir)) == 4


def test_a_poisoned_cache_entry_cannot_make_a_claimed_exact_cell_wrong(cache_dir):
    """The entry for jvp2 holds implicit-vjp's (wrong) answer under the right key, with a
    valid checksum. Judged on it alone, analytic would be wrong and implicit-vjp ok."""
    from deqbench.harness.oracle import OracleAnswer, OracleCache

    problem = deqbench.get_problem("tanh", "quick")
    wrong = deqbench.query("implicit-vjp", problem, "jvp2").values
    OracleCache(cache_dir).store(problem, "jvp2", OracleAnswer("jvp2", wrong, {"d2z_dt2": 0.0}, "poisoned"))
    rows = deqbench.run("analytic,implicit-vjp", "tanh", "jvp2", quick=True, repeats=1)
    assert statuses(rows) == {"analytic/tanh/jvp2": "ok", "implicit-vjp/tanh/jvp2": "wrong"}
    fresh = OracleCache(cache_dir).answer(problem, "jvp2")  # the entry was replaced
    assert fresh.cached and "poisoned" not in fresh.method
