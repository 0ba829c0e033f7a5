"""Every command the README shows works as written, so that the README cannot drift from the code.

What is checked, by the command's first word (a command of no rule here fails the test, so a new
kind of command must be given one):

- The commands are those of the README's shell blocks (```bash, sh, shell, console: comments
  dropped, `\\`-continued lines joined, split at `&&`, `;` and `|`), and the inline code spans of
  its text that start with `make `, `./trademesh`, `scripts/` or `.venv/bin/`.
- `./trademesh ARGS`: run through the wrapper at the repository's root, as a reader would (the
  bare `./trademesh` of the text as `./trademesh --help`). A
  command that only reads the repository and writes where it is told (`--help`, `events
  asyncapi`, `events schema`, `backtest run`) is run for real, in a scratch folder that holds only
  its input files (linked), and the files it names as outputs must appear there. Any other (it
  needs a running platform, or it changes the repository: `infra`, `up`, `status`, `user`,
  `new-service`, ...) is run as `./trademesh SUBCOMMAND --help`, and each option the README gives
  it must be one the help lists.
- `make TARGET [VAR=value]`: `make -n` (a dry run) knows the target.
- `scripts/...` and `.venv/bin/...`: the file exists and is executable.
- `docker`, `tilt`, `helm`, `kubectl` (not installed here): `scripts/setup-dev-environment.sh`
  (the documented way to get them) names the tool, and every argument that is a path in the
  repository exists (a `repo/chart` of a `helm repo add`ed repository is not a path).
- No command in the README starts with `uv run` or a bare `trademesh`: neither is on a fresh
  machine's PATH.
- The quick start's commands are `make run` and `make test`, and nothing else.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from trademesh_cli.main import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
WRAPPER = ROOT / "trademesh"
SHELL_BLOCK = re.compile(r"^```(bash|sh|shell|console)\n(.*?)^```", re.M | re.S)
ANY_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
INLINE_COMMAND = re.compile(r"^(make |\./trademesh|scripts/|\.venv/bin/)")
# Subcommands that only read the repository and write where they are told: run for real.
RUN_FOR_REAL = {("--help",), ("events", "asyncapi"), ("events", "schema"), ("backtest", "run")}
# Their options that name a file or folder they write.
OUTPUT_OPTIONS = {"-o", "--output", "--png", "--trades"}
# Tools of the compose and Kubernetes modes, which do not run here.
ELSEWHERE = {"docker", "tilt", "helm", "kubectl"}


def _shell_commands(text: str) -> Iterator[list[str]]:
    """Each simple command of a shell snippet, as its words."""
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in lexer:
            if token in {"&&", ";", "|", "||", "&"}:
                if command:
                    yield command
                command = []
            else:
                command.append(token)
        if command:
            yield command


def _block_commands() -> list[list[str]]:
    text = README.read_text()
    return [words for m in SHELL_BLOCK.finditer(text) for words in _shell_commands(m.group(2))]


def _inline_commands() -> list[list[str]]:
    prose = ANY_BLOCK.sub("", README.read_text())
    spans = [m.group(1) for m in INLINE.finditer(prose)]
    return [
        words for span in spans if INLINE_COMMAND.match(span) for words in _shell_commands(span)
    ]


COMMANDS = _block_commands() + _inline_commands()


def _id(words: list[str]) -> str:
    return " ".join(words)[:80]


def _reader_env() -> dict[str, str]:
    """The environment a reader's shell has: none of the test session's or `make test`'s."""
    own = ("TRADEMESH_", "PYTEST_", "MAKE", "MFLAGS")
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def _trademesh(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = _reader_env()
    env["COLUMNS"] = "200"  # help text unwrapped, whatever the terminal
    return subprocess.run(
        [str(WRAPPER), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _subcommand(args: list[str]) -> tuple[str, ...]:
    """The subcommand path of a `trademesh` command line (`events tail`, `up`), from the CLI."""
    if args[:1] == ["--help"]:
        return ("--help",)
    group = typer.main.get_command(app)
    path: list[str] = []
    for word in args:
        commands = getattr(group, "commands", None)
        if commands is None or word not in commands:
            break
        path.append(word)
        group = commands[word]
    assert path, f"`trademesh {' '.join(args)}`: no such subcommand"
    return tuple(path)


def _check_trademesh(args: list[str], tmp_path: Path) -> None:
    args = args or ["--help"]  # the text naming the command itself: what it shows first
    path = _subcommand(args)
    if path in RUN_FOR_REAL:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        outputs = [args[i + 1] for i, word in enumerate(args[:-1]) if word in OUTPUT_OPTIONS]
        inputs = {w.split("/")[0] for w in args if "/" in w and w not in outputs}
        for first in inputs:
            if (ROOT / first).exists():
                (scratch / first).symlink_to(ROOT / first)
        done = _trademesh(args, scratch)
        assert done.returncode == 0, f"./trademesh {' '.join(args)}\n{done.stdout}\n{done.stderr}"
        for output in outputs:
            written = scratch / output
            assert written.exists(), f"./trademesh {' '.join(args)} wrote no {output}"
            assert written.is_dir() or written.stat().st_size > 0, output
        if path == ("--help",):
            assert "new-service" in done.stdout and "backtest" in done.stdout
        return
    done = _trademesh([*path, "--help"], ROOT)
    assert done.returncode == 0, f"./trademesh {' '.join(path)} --help\n{done.stderr}"
    for word in args:
        option = word.split("=")[0]
        if option.startswith("--"):
            listed = re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", done.stdout)
            assert listed, f"./trademesh {' '.join(path)} has no {option}"


def _check_make(args: list[str]) -> None:
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT,
        env=_reader_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"make {' '.join(args)}: {done.stderr}"


def _check_elsewhere(words: list[str], helm_repos: set[str]) -> None:
    setup = (ROOT / "scripts" / "setup-dev-environment.sh").read_text()
    assert re.search(rf"\b{words[0]}\b", setup), f"setup-dev-environment.sh installs {words[0]}"
    for word in words[1:]:
        if "/" not in word or "://" in word or word.startswith("-") or "=" in word:
            continue
        if word.split("/")[0] in helm_repos:
            continue  # a chart of a repository the README adds with `helm repo add`
        assert (ROOT / word).exists(), f"`{' '.join(words)}`: {word} is not in the repository"


def test_the_readme_has_commands_to_check() -> None:
    firsts = {words[0] for words in COMMANDS}
    assert {"make", "./trademesh", "helm", "kubectl"} <= firsts, firsts
    assert len(COMMANDS) > 30


def test_the_quick_start_is_make_run_and_make_test() -> None:
    first = SHELL_BLOCK.search(README.read_text())
    assert first is not None
    assert [words[:2] for words in _shell_commands(first.group(2))] == [
        ["make", "run"],
        ["make", "test"],
    ]


def test_no_command_needs_uv_on_the_path() -> None:
    # In the shell blocks a `uv` or bare `trademesh` command has no rule and fails below; in the
    # text, `trademesh up` may name a subcommand, but nothing is to be typed as `uv run ...`.
    text = README.read_text()
    spans = [m.group(1) for m in INLINE.finditer(ANY_BLOCK.sub("", text))]
    assert not [span for span in spans if span.startswith("uv run")]
    assert not re.search(r"^\s*uv run", text, re.M)


@pytest.mark.parametrize("words", COMMANDS, ids=[_id(w) for w in COMMANDS])
def test_a_readme_command_works(words: list[str], tmp_path: Path) -> None:
    helm_repos = {c[3] for c in COMMANDS if c[:3] == ["helm", "repo", "add"]}
    tool = words[0]
    if tool == "./trademesh":
        _check_trademesh(words[1:], tmp_path)
    elif tool == "make":
        _check_make(words[1:])
    elif tool.startswith(("scripts/", ".venv/bin/")):
        assert os.access(ROOT / tool, os.X_OK), f"{tool} is not an executable file"
    elif tool in ELSEWHERE:
        _check_elsewhere(words, helm_repos)
    else:
        pytest.fail(f"`{' '.join(words)}`: no rule for {tool} (see this module's docstring)")
