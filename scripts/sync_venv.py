#!/usr/bin/env python3
"""Sync the workspace's virtualenv, prove it sound, and only then stamp it (what `make install` runs).

`uv sync` trusts the metadata it finds installed: a sync killed halfway can leave a package whose
metadata is in place but whose files are not, and the next sync reports "Checked N packages" over
it. So after each sync every installed distribution is checked against its RECORD (each file
present, at its recorded size) and every workspace package is imported (its top-level package and
its `app` module, what a service loads first). A damaged distribution is reinstalled
(`uv sync --reinstall-package`); if that does not make the virtualenv sound, or its interpreter
does not start, the virtualenv is rebuilt. The stamp is written last, so an interrupted or failed
run leaves none and the next `make` starts over.

    python3 scripts/sync_venv.py --uv UV --stamp .venv/.synced -- --all-packages

Standard library only: the checks must run while the virtualenv's own packages are broken. See
docs/decisions/0118-cli-on-path-and-self-repairing-setup.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Modules a workspace package is imported by, besides its top-level package.
ENTRY_MODULES = ("app",)


@dataclass
class Findings:
    """What the checks inside the virtualenv found."""

    #: distribution -> what is wrong with its files (missing, of the wrong size, no RECORD).
    damaged: dict[str, list[str]] = field(default_factory=dict)
    #: distribution -> the workspace imports that fail inside it (its files are whole).
    suspects: dict[str, list[str]] = field(default_factory=dict)
    #: workspace module -> the error it raises in the workspace's own code.
    code_errors: dict[str, str] = field(default_factory=dict)


def _say(message: str) -> None:
    sys.stderr.write(f"install: {message}\n")
    sys.stderr.flush()


# --- inside the virtualenv ------------------------------------------------------------------


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_distributions(site_dirs: Sequence[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every distribution installed in site_dirs checked against its RECORD.

    Returns (damaged: name -> problems, owners: absolute file path -> distribution name).
    """
    damaged: dict[str, list[str]] = {}
    owners: dict[str, str] = {}
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=list(site_dirs)):
        folder = Path(str(getattr(dist, "_path", "")))
        name = dist.metadata["Name"] if dist.metadata is not None else None
        if not name:
            # METADATA is missing or cut short: the folder's name still says whose it is.
            name = folder.name.split("-")[0] if folder.name else "<unknown>"
            damaged.setdefault(name, []).append(f"{folder.name}: no METADATA")
        key = _normalise(name)
        if key in seen and seen[key] != folder.name:
            damaged.setdefault(name, []).append(f"installed twice ({seen[key]}, {folder.name})")
        seen[key] = folder.name
        files = dist.files
        if files is None:
            damaged.setdefault(name, []).append(f"{folder.name}: no RECORD")
            continue
        missing = truncated = 0
        for entry in files:
            path = Path(str(dist.locate_file(entry)))
            owners[os.path.normpath(path)] = name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                missing += 1
                continue
            if entry.size is not None and size != entry.size:
                truncated += 1
        if missing:
            damaged.setdefault(name, []).append(f"{missing} file(s) missing")
        if truncated:
            damaged.setdefault(name, []).append(f"{truncated} file(s) of the wrong size")
    return damaged, owners


def workspace_modules(root: Path) -> list[str]:
    """The workspace's packages (libs/*/src/<pkg>, services/*/src/<pkg>) and their entry modules."""
    modules = []
    for init in sorted(root.glob("*/*/src/*/__init__.py")):
        if init.parents[3].name not in ("libs", "services"):
            continue
        package = init.parent
        modules.append(package.name)
        modules += [f"{package.name}.{m}" for m in ENTRY_MODULES if (package / f"{m}.py").is_file()]
    return modules


def _culprit(exc: BaseException, owners: dict[str, str], workspace: set[str]) -> str | None:
    """The installed distribution an import error comes from, or None when it is the code's own.

    Only the errors a damaged package causes are laid at its door: an import that fails inside it
    (a missing module, a half-initialised one) and a syntax error in its files.
    """
    paths: list[str] = []
    if isinstance(exc, SyntaxError) and exc.filename:
        paths.append(exc.filename)
    elif isinstance(exc, ImportError):
        if exc.path:
            paths.append(exc.path)  # "cannot import name X from partially initialized module"
        elif exc.name:
            top = exc.name.split(".")[0]
            found = importlib.metadata.packages_distributions().get(top, [])
            if found and _normalise(found[0]) not in workspace:
                return found[0]
    for path in paths:
        owner = owners.get(os.path.normpath(path))
        if owner is not None and _normalise(owner) not in workspace:
            return owner
    return None


def check_imports(
    modules: Iterable[str], owners: dict[str, str], workspace: set[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Import each module: (distribution -> failed imports it is suspected of, module -> error
    in the workspace's own code)."""
    suspects: dict[str, list[str]] = {}
    code_errors: dict[str, str] = {}
    for module in modules:
        try:
            importlib.import_module(module)
        except (Exception, SystemExit) as exc:  # whatever a module raises at import
            text = f"{type(exc).__name__}: {exc}"
            culprit = _culprit(exc, owners, workspace)
            if culprit is None:
                code_errors[module] = text
            else:
                suspects.setdefault(culprit, []).append(f"`import {module}`: {text}")
    return suspects, code_errors


def _project_name(pyproject: Path) -> str:
    import tomllib  # here: the part that runs outside the virtualenv needs no Python 3.11

    try:
        return str(tomllib.loads(pyproject.read_text())["project"]["name"])
    except (KeyError, OSError, ValueError):
        return ""


def inspect_here(root: Path) -> Findings:
    """The checks, run by the virtualenv's own interpreter (in isolated mode: the workspace's
    packages are imported as installed, not from the current folder)."""
    damaged, owners = check_distributions(_site_dirs())
    if damaged:
        # With files missing, importing would only repeat the finding in a noisier form.
        return Findings(damaged=damaged)
    workspace = {_normalise(n) for p in root.glob("*/*/pyproject.toml") if (n := _project_name(p))}
    suspects, code_errors = check_imports(workspace_modules(root), owners, workspace)
    return Findings(suspects=suspects, code_errors=code_errors)


# --- outside: sync, inspect, repair, stamp --------------------------------------------------


def inspect(venv: Path, root: Path) -> Findings | None:
    """Run the checks with the virtualenv's interpreter; None when it cannot run them at all."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    try:
        done = subprocess.run(
            [str(python), "-I", str(Path(__file__).resolve()), "--inspect", str(root)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _say(f"the checks could not run in {venv}: {exc}")
        return None
    try:
        return Findings(**json.loads(done.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        _say(f"the checks failed in {venv}: {done.stderr.strip()[-2000:]}")
        return None


def _starts(venv: Path) -> bool:
    try:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-I", "-c", ""], timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _describe(problems: dict[str, list[str]]) -> str:
    return "; ".join(f"{name} ({', '.join(why)})" for name, why in sorted(problems.items()))


def _why(findings: Findings | None) -> str:
    """What is wrong with a virtualenv that failed its checks."""
    return (
        "its interpreter cannot run the checks" if findings is None else _describe(findings.damaged)
    )


def _sync(uv: str, sync_args: Sequence[str], extra: Sequence[str] = ()) -> int:
    return subprocess.run([uv, "sync", *sync_args, *extra], check=False).returncode


def sync_and_verify(uv: str, venv: Path, stamp: Path, root: Path, sync_args: Sequence[str]) -> int:
    """Sync, check, repair what is broken, and write the stamp only once the install is sound.

    Damaged files are reinstalled, then the virtualenv is rebuilt if they still are (or if its
    interpreter does not start). An import that fails inside an installed package whose files
    are whole is reinstalled once; if it still fails, it is the importing code's error, not the
    install's: a warning, as is an import that fails in the workspace's own code.
    """
    stamp.unlink(missing_ok=True)
    if venv.exists() and not _starts(venv):
        _say(f"{venv} is unusable (its interpreter does not start): rebuilding it")
        shutil.rmtree(venv)
    if code := _sync(uv, sync_args):
        return code
    findings = inspect(venv, root)
    repaired = False
    if findings is not None and (findings.damaged or findings.suspects):
        broken = {**findings.suspects, **findings.damaged}
        _say(
            f"the virtualenv was left half-installed (an interrupted sync?): {_describe(broken)}; "
            f"reinstalling {', '.join(sorted(broken))}"
        )
        reinstall = [arg for name in sorted(broken) for arg in ("--reinstall-package", name)]
        if code := _sync(uv, sync_args, reinstall):
            return code
        findings, repaired = inspect(venv, root), True
    if findings is None or findings.damaged:
        _say(f"the virtualenv is still broken ({_why(findings)}): rebuilding {venv} from scratch")
        shutil.rmtree(venv, ignore_errors=True)
        if code := _sync(uv, sync_args):
            return code
        findings, repaired = inspect(venv, root), True
        if findings is None or findings.damaged:
            _say(f"a fresh {venv} is broken too ({_why(findings)}): see the errors above")
            return 1
    if repaired:
        _say(f"repaired {venv}: every installed package is whole")
    for name, imports in sorted(findings.suspects.items()):
        _say(f"warning: {'; '.join(imports)}, inside {name}, though it is installed whole")
    for module, error in sorted(findings.code_errors.items()):
        # The install is sound; the workspace's code is for its author (and the tests) to fix.
        _say(f"warning: `import {module}` fails in the workspace's own code: {error}")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default="uv", help="the uv binary")
    parser.add_argument("--venv", type=Path, default=Path(".venv"))
    parser.add_argument("--stamp", type=Path, default=Path(".venv/.synced"))
    parser.add_argument("--inspect", type=Path, metavar="ROOT", help=argparse.SUPPRESS)
    parser.add_argument("sync_args", nargs="*", help="passed to `uv sync` (after --)")
    args = parser.parse_args(argv)
    if args.inspect is not None:
        findings = inspect_here(args.inspect.resolve())
        sys.stdout.write(json.dumps(dataclasses.asdict(findings)) + "\n")
        return 0
    return sync_and_verify(args.uv, args.venv, args.stamp, Path.cwd(), args.sync_args)


if __name__ == "__main__":
    sys.exit(main())
