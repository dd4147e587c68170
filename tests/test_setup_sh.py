"""tools/setup.sh, run on stubs: which python it installs with, TORCH_SPEC, the torch pin,
and a refusal to be sourced into an interactive shell."""

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of tools/setup.sh beside a stub .venv/bin/python that logs its arguments (and
    answers torch's version), and a folder with a stub system `python` that logs too."""
    tree, system, log = tmp_path / "tree", tmp_path / "system", tmp_path / "calls.log"
    (tree / "tools").mkdir(parents=True)
    shutil.copy(REPO / "tools" / "setup.sh", tree / "tools" / "setup.sh")
    (tree / ".venv" / "bin").mkdir(parents=True)
    system.mkdir()
    for path, name in ((tree / ".venv" / "bin" / "python", "venv"), (system / "python", "SYSTEM")):
        path.write_text(
            "#!/bin/sh\n"
            f'echo "{name} $*" >> "{log}"\n'
            'case "$*" in *"print(torch.__version__)"*) echo 2.13.0+cpu;; esac\n'
        )
        path.chmod(0o755)
    return tree, system, log


def _run(
    tree: Path, system: Path, env: dict[str, str], script: str = ""
) -> subprocess.CompletedProcess:
    command = ["bash", str(tree / "tools" / "setup.sh")] if not script else ["bash", "-c", script]
    path = f"{system}:/usr/bin:/bin"
    return subprocess.run(command, cwd=tree, env={"PATH": path, "HOME": str(tree), **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_installs_with_the_venvs_own_python_and_pins_the_torch_there(tmp_path):
    """A stub `python` first on PATH stands for what .venv/bin/activate of a .venv made in
    another folder leaves first: nothing may reach it. The last install pins torch to the
    version there, so that pip cannot swap it for PyPI's CUDA build."""
    tree, system, log = _tree(tmp_path)
    done = _run(tree, system, {})
    assert done.returncode == 0, done.stdout + done.stderr
    calls = log.read_text().splitlines()
    assert not [c for c in calls if c.startswith("SYSTEM")], calls
    assert "venv -m pip install -q -e .[bench,dev] torch==2.13.0+cpu" in calls
    assert not [c for c in calls if "pip install -q torch" in c]  # torch was there


def test_torch_spec_is_installed_even_over_a_torch_there(tmp_path):
    tree, system, log = _tree(tmp_path)
    done = _run(tree, system, {"TORCH_SPEC": "torch==2.12.0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "venv -m pip install -q torch==2.12.0" in log.read_text().splitlines()


def test_sourcing_into_an_interactive_shell_is_refused_and_leaves_it_as_it_was(tmp_path):
    """Sourced, its `set -euo pipefail` and `cd` stayed in the shell, whose first failing
    command then closed it."""
    tree, system, log = _tree(tmp_path)
    script = (f'. "{tree}/tools/setup.sh"; echo "status $?"; false; echo "alive in $PWD"; '
              'case $- in *e*) echo errexit;; esac')  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["bash", "-i", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "tools/setup.sh: run it with bash, then . .venv/bin/activate" in done.stderr
    assert f"status 1\nalive in {tmp_path}\n" in done.stdout and "errexit" not in done.stdout
    assert not log.exists()  # nothing ran
