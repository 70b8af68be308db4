"""The oracle cache: keyed by the instance's numbers, checksummed, never raising on a bad entry.

Every cache here lives in a tmp_path; the instances are the quick tanh problem and small
problems defined by the tests themselves.

Tests internals by their path: oracle.cache's entry format and the cache command's group.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import time
import warnings
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.cache import cache as cache_group
from deqbench.harness.oracle import OracleAnswer, oracle
from deqbench.harness.oracle import cache as oracle_cache
from deqbench.harness.oracle.cache import (
    HEADER_LENGTH,
    MAGIC,
    OracleCache,
    OracleCacheWarning,
    cache_key,
    fingerprint,
    keyed_checksum,
)
from deqbench.problems.base import Problem
from deqbench.problems.tanh import TanhDEQ


@pytest.fixture(scope="module")
def tanh():
    return deqbench.get_problem("tanh", "quick")


@pytest.fixture(scope="module")
def truth(tanh):
    """The oracle's own answer to forward on tanh, computed without any cache."""
    return oracle(tanh, "forward")


def answer_and_warnings(cache: OracleCache, problem: Problem, query: str, **kwargs):
    """The cache's answer and the OracleCacheWarnings it emitted (every one, not deduplicated)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = cache.answer(problem, query, **kwargs)
    return answer, [w for w in caught if issubclass(w.category, OracleCacheWarning)]


def assert_same_values(answer: OracleAnswer, expected: OracleAnswer) -> None:
    assert answer.values.keys() == expected.values.keys()
    for name, value in expected.values.items():
        assert torch.equal(answer.values[name], value), name


# ------------------------------------------------------------------------ hits
def test_a_hit_returns_the_oracles_values_marked_cached_and_survives_a_new_cache_object(
    tmp_path, tanh, truth
):
    cache = OracleCache(tmp_path)
    first = cache.answer(tanh, "forward")
    second = cache.answer(tanh, "forward")
    assert (first.cached, second.cached) == (False, True)
    assert (cache.misses, cache.hits, cache.refreshes) == (1, 1, 0)
    assert_same_values(first, truth)
    assert_same_values(second, truth)
    assert second.error_estimate == pytest.approx(truth.error_estimate)
    assert second.method == truth.method

    another = OracleCache(tmp_path).answer(deqbench.get_problem("tanh", "quick"), "forward")
    assert another.cached
    assert_same_values(another, truth)


def test_a_read_only_cache_still_answers_without_warnings(tmp_path, tanh, truth):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = OracleCache(blocker / "cache")  # nothing can ever be written under a file
    for _ in range(2):
        answer, caught = answer_and_warnings(cache, tanh, "forward")
        assert not answer.cached and not caught
        assert_same_values(answer, truth)
    assert cache.misses == 2


def test_the_oracles_own_errors_propagate_and_nothing_is_stored(tmp_path):
    cache = OracleCache(tmp_path)
    with pytest.raises(ValueError, match="unknown query"):
        cache.answer(deqbench.get_problem("tanh", "quick"), "../forward")
    with pytest.raises(deqbench.UnsupportedQueryError):
        cache.answer(deqbench.get_problem("tanh", "quick", n=9), "hessian")  # n > hessian_max_n
    assert cache.info()["entries"] == 0


# ----------------------------------------------------------------- bad entries
def flip_middle_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


def legacy_torch_file(path: Path, data: bytes) -> None:
    """What the name-keyed cache wrote: a plain torch file of a dict."""
    torch.save({"key": {"problem": "tanh"}, "values": {}, "error_estimate": {}, "method": ""}, path)


def checksummed_pickle(path: Path, data: bytes) -> None:
    """A sound header and keyed checksum over a payload that is no weights-only torch file."""
    body = pickle.dumps({"values": object})
    path.write_bytes(MAGIC + keyed_checksum(cache_key(), body) + b"\n" + body)


def sha256_forgery(path: Path, data: bytes) -> None:
    """Another answer with a recomputed plain sha256 in place of the keyed checksum: what
    anyone who can write the cache folder, but not read the user's key, can make."""
    body = data[HEADER_LENGTH:].replace(b"forward", b"fORWARD")
    path.write_bytes(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


BAD_ENTRIES = {
    "flipped byte": (lambda path, data: path.write_bytes(flip_middle_byte(data)), "checksum mismatch"),
    "truncated": (lambda path, data: path.write_bytes(data[: len(data) // 2]), "checksum mismatch"),
    "truncated header": (lambda path, data: path.write_bytes(data[:20]), "truncated header"),
    "empty": (lambda path, data: path.write_bytes(b""), "no DEQBORACLE2 header"),
    "random bytes": (
        lambda path, data: path.write_bytes(random.Random(0).randbytes(4096)),
        "no DEQBORACLE2 header",
    ),
    "legacy torch file": (legacy_torch_file, "no DEQBORACLE2 header"),
    "plain pickle": (
        lambda path, data: path.write_bytes(pickle.dumps({"values": {}})),
        "no DEQBORACLE2 header",
    ),
    "checksummed pickle": (checksummed_pickle, "payload does not load"),
    "sha256 forgery": (sha256_forgery, "checksum mismatch"),
    "entry of the sha256 format": (
        lambda path, data: path.write_bytes(data.replace(MAGIC, b"DEQBORACLE1\n", 1)),
        "no DEQBORACLE2 header",
    ),
}


@pytest.mark.parametrize("spoil", list(BAD_ENTRIES))
def test_a_bad_entry_is_a_miss_with_one_warning_and_is_rewritten_sound(tmp_path, tanh, truth, spoil):
    write_bad, reason = BAD_ENTRIES[spoil]
    cache = OracleCache(tmp_path)
    cache.answer(tanh, "forward")
    path = cache.entry_path(tanh, "forward")
    write_bad(path, path.read_bytes())

    answer, caught = answer_and_warnings(cache, tanh, "forward")
    assert not answer.cached
    assert_same_values(answer, truth)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert str(path) in message and reason in message and "recomputed" in message

    again, caught = answer_and_warnings(OracleCache(tmp_path), tanh, "forward")
    assert again.cached and not caught
    assert_same_values(again, truth)


def test_an_entry_of_another_instance_at_this_path_is_a_miss(tmp_path, tanh, truth):
    cache = OracleCache(tmp_path)
    other = deqbench.get_problem("tanh", "quick", seed=1)
    cache.answer(other, "forward")
    cache.entry_path(other, "forward").replace(cache.entry_path(tanh, "forward"))

    answer, caught = answer_and_warnings(cache, tanh, "forward")
    assert not answer.cached
    assert_same_values(answer, truth)
    assert len(caught) == 1 and "another problem instance" in str(caught[0].message)


def test_a_folder_in_place_of_an_entry_never_raises(tmp_path, tanh, truth):
    cache = OracleCache(tmp_path)
    cache.entry_path(tanh, "forward").mkdir(parents=True)
    for _ in range(2):  # the entry cannot be rewritten either: it warns each time, and answers
        answer, caught = answer_and_warnings(cache, tanh, "forward")
        assert not answer.cached and len(caught) == 1
        assert_same_values(answer, truth)


def test_refresh_replaces_a_poisoned_entry_with_the_true_answer(tmp_path, tanh, truth):
    cache = OracleCache(tmp_path)
    poison = oracle(tanh, "jvp")  # another query's values, stored by the cache's own writer
    cache.store(tanh, "forward", poison)

    trusted = cache.answer(tanh, "forward")
    assert trusted.cached  # a sound checksum cannot tell a wrong answer: hence refresh
    assert_same_values(trusted, poison)

    refreshed = cache.answer(tanh, "forward", refresh=True)
    assert not refreshed.cached and cache.refreshes == 1
    assert_same_values(refreshed, truth)
    after = cache.answer(tanh, "forward")
    assert after.cached
    assert_same_values(after, truth)


# ---------------------------------------------------------------- staleness
@pytest.fixture
def file_problem(isolated_registries, tmp_path):
    """A registered problem (for this test only: see conftest) whose layer uses a matrix read
    from a file, not kept in theta."""

    class FileMatrixDEQ(Problem):
        name = "oracle-cache-test-file-matrix"
        presets = {"quick": {"m": 4, "n": 2, "batch": 3}}
        matrix_file: ClassVar[Path] = tmp_path / "matrix.pt"

        def build(self, generator, *, m, n, batch):
            self.frozen = torch.load(self.matrix_file, weights_only=True).to(self.dtype)
            self.theta = {"U": self.randn(generator, m, n), "b": self.randn(generator, m)}
            self.x = self.randn(generator, batch, n)
            self.directions = {"t": torch.eye(n, dtype=self.dtype)[0]}

        def f(self, theta, x, z):
            return torch.tanh(z @ self.frozen.T + x @ theta["U"].T + theta["b"])

    return FileMatrixDEQ


def write_matrix(path: Path, seed: int) -> None:
    matrix = torch.randn(4, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.save(0.5 * matrix / torch.linalg.matrix_norm(matrix, ord=2), path)


def test_a_changed_data_file_changes_the_key_and_the_answer_is_recomputed(tmp_path, file_problem):
    cache = OracleCache(tmp_path / "cache")
    write_matrix(file_problem.matrix_file, seed=0)
    before = deqbench.get_problem(file_problem.name, "quick")
    assert not cache.answer(before, "forward").cached
    assert cache.answer(before, "forward").cached

    write_matrix(file_problem.matrix_file, seed=1)
    after = deqbench.get_problem(file_problem.name, "quick")
    assert fingerprint(after, "forward") != fingerprint(before, "forward")
    answer = cache.answer(after, "forward")
    assert not answer.cached
    assert_same_values(answer, oracle(after, "forward"))
    assert not torch.equal(answer.values["z_star"], oracle(before, "forward").values["z_star"])


class SteeperTanh(TanhDEQ):  # no `name` of its own: unregistered, and still named "tanh"
    def f(self, theta, x, z):
        return torch.tanh(1.0001 * (z @ theta["W"].T + x @ theta["U"].T + theta["b"]))


class OtherDataLoss(TanhDEQ):
    def data_loss(self, theta, x, z):
        return 0.5 * (z - self.target).abs().sum(dim=1).mean()


class OtherPhysicsLoss(TanhDEQ):
    def physics_loss(self, theta, x, z, d):
        return (d["z_t"] - z).square().sum(dim=1).mean()


class OtherPhysics2Loss(TanhDEQ):
    def physics2_loss(self, theta, x, z, d):
        return (d["z_xx"] - z).square().sum(dim=1).mean()


class OtherPartials(TanhDEQ):  # the same loss on a partial along another direction
    physics2_partials = {"z_xx": "tt"}


class OtherHead(TanhDEQ):
    def output(self, theta, z):
        return 2 * z


class OtherDirection(TanhDEQ):
    def direction(self, query):
        return self.directions["x"]


@pytest.mark.parametrize(
    "variant",
    [
        SteeperTanh,
        OtherDataLoss,
        OtherPhysicsLoss,
        OtherPhysics2Loss,
        OtherPartials,
        OtherHead,
        OtherDirection,
    ],
)
def test_an_edited_layer_loss_head_or_direction_changes_the_fingerprint(tanh, variant):
    edited = variant("quick")
    assert (edited.name, edited.size, edited.seed) == (tanh.name, tanh.size, tanh.seed)
    assert fingerprint(edited, "jvp") != fingerprint(tanh, "jvp")


def test_fingerprints_agree_on_a_rebuilt_instance_and_differ_on_seed_query_and_dtype(tanh):
    key = fingerprint(tanh, "forward")
    assert fingerprint(deqbench.get_problem("tanh", "quick"), "forward") == key
    assert fingerprint(deqbench.get_problem("tanh", "quick", seed=1), "forward") != key
    assert fingerprint(deqbench.get_problem("tanh", "quick", dtype=torch.float32), "forward") != key
    assert fingerprint(tanh, "jvp") != key
    assert len(key) == 64 and int(key, 16) >= 0


def test_fingerprints_change_with_the_torch_and_oracle_versions(tanh, monkeypatch):
    key = fingerprint(tanh, "forward")
    monkeypatch.setattr(torch, "__version__", "0.0.0+not-this-one")
    assert fingerprint(tanh, "forward") != key
    monkeypatch.undo()
    monkeypatch.setattr(oracle_cache, "ORACLE_VERSION", "bumped")
    assert fingerprint(tanh, "forward") != key


def test_a_layer_that_raises_on_a_probe_still_has_a_fingerprint(tanh):
    class Raising(TanhDEQ):
        def f(self, theta, x, z):
            raise ValueError("no")

    assert fingerprint(Raising("quick"), "forward") != fingerprint(tanh, "forward")


def test_fingerprinting_is_cheap_and_leaves_the_global_rng_alone(tanh):
    state = torch.get_rng_state()
    start = time.perf_counter()
    for _ in range(5):
        fingerprint(tanh, "pinn2_grad")
    assert (time.perf_counter() - start) / 5 < 0.1  # a few milliseconds in practice
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------- CLI
def test_cli_info_counts_entries_and_unreadable_ones_and_clear_leaves_foreign_files(tmp_path, tanh):
    cache = OracleCache(tmp_path)
    for query in ("forward", "jvp"):
        cache.answer(tanh, query)
    vanderpol = deqbench.get_problem("vanderpol", "quick")
    cache.answer(vanderpol, "forward")
    spoiled = cache.entry_path(tanh, "jvp")
    spoiled.write_bytes(b"X" + spoiled.read_bytes()[1:])  # info reads headers only
    (tmp_path / "tanh" / f"grad-{'0' * 24}.pt").write_bytes(b"a name-keyed entry of old")
    (tmp_path / "vanderpol" / f".forward-{'a' * 64}.pt.x1y2.tmp").write_bytes(b"a killed write")
    foreign = [tmp_path / "notes.txt", tmp_path / "tanh" / "README"]
    for path in foreign:
        path.write_text("not the cache's")

    runner = CliRunner()
    shown = runner.invoke(cache_group, ["info", "--dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.output.splitlines()]
    assert ["entries:", "4"] in lines and ["unreadable:", "2"] in lines
    assert ["tanh:", "3"] in lines and ["vanderpol:", "1"] in lines
    assert str(tmp_path) in shown.output and "KiB" in shown.output

    cleared = runner.invoke(cache_group, ["clear", "--dir", str(tmp_path)])
    assert cleared.exit_code == 0, cleared.output
    assert "removed 4 oracle cache entries" in cleared.output
    assert all(path.read_text() == "not the cache's" for path in foreign)
    assert not (tmp_path / "vanderpol").exists()  # emptied (the leftover write too), so removed
    assert sorted(os.listdir(tmp_path / "tanh")) == ["README"]
    assert OracleCache(tmp_path).info()["entries"] == 0


def test_cli_help_says_where_the_cache_lives_and_how_it_is_keyed():
    for command in ("info", "clear"):
        shown = CliRunner().invoke(cache_group, [command, "--help"])
        assert shown.exit_code == 0
        text = " ".join(shown.output.split())
        assert "$DEQBENCH_CACHE_DIR" in text and "~/.cache/deqbench/oracle" in text
        assert "fingerprint" in text
