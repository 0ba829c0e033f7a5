"""`trademesh new-service`: generate a service from service-template/ and register it.

Registration is mostly discovery: the uv workspace takes every `services/*`, `trademesh up` and
`trademesh db migrate` read `[tool.trademesh.service]`, `make typecheck` and pytest find
`services/*/src` and `services/*/tests`. What is left to do is the import-linter's root packages
in the root pyproject.toml (its contracts see only the packages listed there), the lock file
(`uv lock`) and the install of the new package into the workspace's virtualenv (`uv sync`), so
that it imports and its tests pass at once. Everything is checked before anything is written,
and a failure after that removes what was written.
"""

from __future__ import annotations

import keyword
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from trademesh_events.topics import TOPICS

from trademesh_cli.project import ServiceEntry, discover_services

SLUG = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
FIRST_PORT = 8100
# Ports the platform uses itself: the sample event-logger (trademesh up --sample).
RESERVED_PORTS = {8099}
# Names whose package or distribution would collide with the workspace's own.
RESERVED_NAMES = {"workspace", "template", "service", "services"}
TEMPLATE_DIR = "service-template"


class ScaffoldError(ValueError):
    """The service cannot be generated as asked; the message says why."""


@dataclass(frozen=True)
class ServiceSpec:
    """What to generate: the template's variables."""

    slug: str
    description: str = ""
    port: int | None = None
    consumes: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()
    owns_schema: bool = True
    name: str = ""

    @property
    def identifier(self) -> str:
        return self.slug.replace("-", "_")

    @property
    def package(self) -> str:
        return f"trademesh_{self.identifier}"

    @property
    def title(self) -> str:
        return self.name or self.slug.replace("-", " ").title()


def _library_packages(root: Path) -> set[str]:
    return {path.name for path in (root / "libs").glob("*/src/trademesh_*") if path.is_dir()}


def next_free_port(services: list[ServiceEntry]) -> int:
    """The first port above every registered service's ports (replicas use port + n)."""
    used = [entry.port + entry.replicas - 1 for entry in services]
    return max([FIRST_PORT - 1, *used]) + 1


def check(spec: ServiceSpec, root: Path) -> ServiceSpec:
    """The spec with defaults filled in, or ScaffoldError naming every problem."""
    problems: list[str] = []
    slug = spec.slug
    if not SLUG.fullmatch(slug) or not 2 <= len(slug) <= 30:
        problems.append(
            f"invalid service name {slug!r}: use 2-30 lowercase letters, digits and single "
            "dashes, starting with a letter (e.g. pricing-demo)"
        )
    elif keyword.iskeyword(spec.identifier) or keyword.issoftkeyword(spec.identifier):
        problems.append(f"invalid service name {slug!r}: {spec.identifier!r} is a Python keyword")
    elif slug in RESERVED_NAMES:
        problems.append(f"invalid service name {slug!r}: reserved by the workspace")
    services = discover_services(root)
    if SLUG.fullmatch(slug):
        if (root / "services" / slug).exists():
            problems.append(f"service {slug!r} already exists: services/{slug}")
        elif any(entry.name == slug for entry in services):
            problems.append(f"a service named {slug!r} is already registered")
        if spec.package in _library_packages(root):
            problems.append(
                f"service name {slug!r} clashes with the library {spec.package} in libs/"
            )
    port = spec.port if spec.port is not None else next_free_port(services)
    if not 1024 <= port <= 65535:
        problems.append(f"port {port} is outside 1024-65535")
    clash = next(
        (
            e.name
            for e in services
            for start in (e.port, e.metrics_port)
            if start is not None and start <= port < start + max(e.replicas, 1)
        ),
        None,
    )
    if clash is not None:
        problems.append(f"port {port} is used by {clash}; free: {next_free_port(services)}")
    elif port in RESERVED_PORTS:
        problems.append(f"port {port} is reserved (the sample event-logger)")
    known = {t.name for t in TOPICS}
    for topic in (*spec.consumes, *spec.produces):
        if topic not in known:
            problems.append(f"unknown topic {topic!r}; known: {', '.join(sorted(known))}")
    if len(spec.description) > 200 or any(ch in spec.description for ch in "\r\n\t\x00"):
        problems.append("the description must be one line of at most 200 characters")
    elif any(mark in spec.description for mark in ("{{", "{%", "{#")):
        # cookiecutter renders every variable as a Jinja template.
        problems.append("the description must not contain {{, {% or {#")
    if problems:
        raise ScaffoldError("\n".join(problems))
    return ServiceSpec(
        slug=slug,
        description=spec.description or f"The {slug} service.",
        port=port,
        consumes=tuple(dict.fromkeys(spec.consumes)),
        produces=tuple(dict.fromkeys(spec.produces)),
        owns_schema=spec.owns_schema,
        name=spec.title,
    )


def render(spec: ServiceSpec, template: Path, output_dir: Path) -> Path:
    """Run cookiecutter on the (checked) spec into output_dir; returns the service folder."""
    from cookiecutter.main import cookiecutter

    context = {
        "name": spec.title,
        "slug": spec.slug,
        "description": spec.description,
        "http_port": str(spec.port),
        "consumes": ",".join(spec.consumes),
        "produces": ",".join(spec.produces),
        "owns_schema": spec.owns_schema,
        "package": spec.package,
        "schema": spec.identifier,
    }
    result = cookiecutter(
        str(template),
        no_input=True,
        extra_context=context,
        output_dir=str(output_dir),
        accept_hooks=True,
    )
    return Path(result)


_ROOT_PACKAGES = re.compile(
    r"^\[tool\.importlinter\]\n(?:(?!\[).*\n)*?root_packages = \[\n(?P<items>(?:[ \t]+\S.*\n)*)\]",
    re.M,
)
_ITEM = re.compile(r'^(?P<indent>[ \t]+)"(?P<name>[\w.]+)",[ \t]*(?:#.*)?$')


def with_root_package(pyproject: str, package: str, services: set[str]) -> str:
    """The root pyproject.toml's text with `package` in `[tool.importlinter] root_packages`: among
    the services' packages in name order (after the libraries), one line like the others. The
    text is edited, not re-dumped, so that its comments and layout stay."""
    match = _ROOT_PACKAGES.search(pyproject)
    if match is None:
        raise ScaffoldError("pyproject.toml has no [tool.importlinter] root_packages list")
    lines = match.group("items").splitlines(keepends=True)
    items = [_ITEM.match(line.rstrip("\n")) for line in lines]
    if any(item is None for item in items):
        raise ScaffoldError("[tool.importlinter] root_packages: expected one quoted name a line")
    names = [item.group("name") for item in items if item is not None]
    if package in names:
        return pyproject
    indent = items[-1].group("indent") if items and items[-1] is not None else "    "
    at = next(
        (i for i, name in enumerate(names) if name in services and name > package), len(names)
    )
    lines.insert(at, f'{indent}"{package}",\n')
    start, end = match.span("items")
    return pyproject[:start] + "".join(lines) + pyproject[end:]


def register_root_package(root: Path, package: str, services: set[str]) -> None:
    """Add `package` to the import-linter's root packages in root/pyproject.toml."""
    path = root / "pyproject.toml"
    text = with_root_package(path.read_text(), package, services)
    listed = tomllib.loads(text)["tool"]["importlinter"]["root_packages"]
    if package not in listed:
        raise ScaffoldError(f"could not add {package} to [tool.importlinter] root_packages")
    path.write_text(text)


def uv_binary(root: Path) -> str:
    """The uv running us (`uv run` sets $UV), else uv on PATH, else the Makefile's bootstrap."""
    candidates = [
        os.environ.get("UV"),
        shutil.which("uv"),
        shutil.which("uv", path=str(Path(sys.executable).parent)),
        str(root / ".trademesh" / "bootstrap" / "bin" / "uv"),
        # The workspace whose .venv runs this interpreter (root/.venv/bin/python).
        str(Path(sys.executable).parents[2] / ".trademesh" / "bootstrap" / "bin" / "uv"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ScaffoldError("uv not found: run `make install` first (it bootstraps uv)")


def _uv(root: Path, *args: str) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("UV_LOCKED", None)
    env.pop("UV_FROZEN", None)
    result = subprocess.run(
        [uv_binary(root), *args, "--quiet"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ScaffoldError(f"uv {args[0]} failed:\n{(result.stdout + result.stderr).strip()}")


def lock(root: Path) -> None:
    """Update uv.lock for the workspace as it is now (adds or drops members)."""
    _uv(root, "lock")


def install(root: Path) -> None:
    """Install the workspace as locked into its virtualenv (root/.venv), the new member with it.

    `--inexact` adds and removes nothing else (the deploy group `make test` installs stays); the
    set of packages is the one `make install` syncs, so its next sync has nothing to do.
    """
    _uv(root, "sync", "--all-packages", "--inexact")


def new_service(spec: ServiceSpec, root: Path, *, update_lock: bool = True) -> Path:
    """Check, generate into services/<slug>, list its package in the import-linter's root
    packages, lock and install it into the workspace's virtualenv (unless update_lock is false).
    On any failure the repository is left as it was (the service folder removed, pyproject.toml
    and uv.lock restored)."""
    template = root / TEMPLATE_DIR
    if not (template / "cookiecutter.json").exists():
        raise ScaffoldError(f"no service template at {template}")
    spec = check(spec, root)
    services = {entry.module for entry in discover_services(root)}
    pyproject = root / "pyproject.toml"
    saved_pyproject = pyproject.read_bytes()
    # Fails, before anything is written, on a list it cannot edit.
    with_root_package(saved_pyproject.decode(), spec.package, services)
    target = root / "services" / spec.slug
    lock_file = root / "uv.lock"
    saved_lock = lock_file.read_bytes() if lock_file.exists() else None
    scratch = root / ".trademesh"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="new-service-", dir=scratch) as tmp:
        try:
            generated = render(spec, template, Path(tmp))
        except Exception as exc:  # cookiecutter's hook and render errors have many types
            raise ScaffoldError(f"the template failed to render: {exc}") from exc
        target.parent.mkdir(exist_ok=True)
        shutil.move(generated, target)
    try:
        register_root_package(root, spec.package, services)
        if update_lock:
            lock(root)
            install(root)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        pyproject.write_bytes(saved_pyproject)
        if saved_lock is not None:
            lock_file.write_bytes(saved_lock)
        raise
    return target
