"""tools/mutants.py: its mutants still point at the code they mutate, and the harness tells a
caught mutant from a surviving one."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import mutants  # noqa: E402


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=mutants.mutant_id)
def test_each_mutant_targets_one_place_that_exists(mutant):
    assert mutants.target_count(mutant) == 1, f"{mutant.name}: update its target text"
    assert mutant.new != mutant.old
    for path in mutant.tests.split():  # test files, or a test in one (file::test)
        file, _, test = path.partition("::")
        assert (REPO / file).exists(), path
        assert not test or f"def {test}(" in (REPO / file).read_text(), path
    assert mutant.expect in ("caught", "equivalent")
    assert (mutant.expect == "equivalent") == bool(mutant.why)


def test_mutant_names_are_unique_ids_chosen_exactly():
    ids = [mutants.mutant_id(m) for m in mutants.MUTANTS]
    assert len(ids) == len(set(ids))
    assert [mutants.mutant_id(m) for m in mutants.select(["L1", "Y1"])] == ["L1", "Y1"]


def test_a_run_resumes_from_a_mutant_in_list_order():
    ids = [mutants.mutant_id(m) for m in mutants.MUTANTS]
    assert mutants.select_from(ids[0]) == mutants.MUTANTS
    assert [mutants.mutant_id(m) for m in mutants.select_from(ids[-2])] == ids[-2:]
    assert mutants.select_from("no such id") == []
    tool = [sys.executable, str(REPO / "tools" / "mutants.py")]
    unknown = subprocess.run(tool + ["--from", "no such id"], capture_output=True, text=True)
    assert unknown.returncode == 2 and ids[0] in unknown.stdout  # the list, to choose from
    both = subprocess.run(tool + ["--only", "L7", "--from", "L7"], capture_output=True, text=True)
    assert both.returncode == 2 and "exclude each other" in both.stderr


def test_unknown_ids_and_a_timeout_of_nothing_are_refused():
    """An id no mutant has is named, not dropped (--only L7 NOSUCH ran L7 alone, exit 0),
    and --timeout 0 is refused: a timeout counts as caught, so it passed every mutant."""
    tool = [sys.executable, str(REPO / "tools" / "mutants.py")]
    for ids in (["L7", "NOSUCH"], ["NOSUCH"]):
        run = subprocess.run(tool + ["--only", *ids], capture_output=True, text=True)
        assert run.returncode == 2 and "no mutant has the id NOSUCH" in run.stderr, ids
        assert "[1/" not in run.stdout  # nothing ran (the list is printed, to choose from)
    for seconds in ("0", "-5", "nan"):
        run = subprocess.run(tool + ["--only", "L7", "--timeout", seconds], capture_output=True)
        assert run.returncode == 2 and b"--timeout must be a positive" in run.stderr, seconds


@pytest.mark.slow
def test_harness_reports_caught_and_surviving_mutants(tmp_path):
    copy = tmp_path / "tree"
    mutants.scratch_copy(copy)
    assert not (copy / ".git").exists()
    harmless = mutants.Mutant(
        "H harmless comment",
        "mn_triton/kernels/moments.py",
        "        last = length - split_len * (num_splits - 1)\n",
        "        last = length - split_len * (num_splits - 1)  # a comment\n",
        "tests/test_kernels.py::test_row_moments",
    )
    caught, detail = mutants.run_mutant(harmless, copy, timeout_s=600)
    assert not caught, detail
    assert "passed" in detail
    source = (copy / harmless.file).read_text()
    assert source == (REPO / harmless.file).read_text()  # restored after the run
    run = subprocess.run(
        [sys.executable, str(REPO / "tools" / "mutants.py"), "--only", "L7"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok         caught   L7" in run.stdout


def test_readme_counts_the_mutants():
    readme = (REPO / "README.md").read_text()
    assert f"it plants {len(mutants.MUTANTS)} known bugs" in readme
