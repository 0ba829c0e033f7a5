"""Every relative link in the repository's Markdown leads somewhere: the file exists and, when the
link names a heading (`architecture.md#security`), the file has that heading.

Links in code (fenced blocks, inline spans) and to other sites are not checked; neither is the
service template's README, which links from where a generated service will stand.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
# Hidden folders are tools' (.venv, .trademesh, caches), but for these two of the project's.
KEPT_HIDDEN = {".github", ".ci"}
SKIPPED_DIRS = {"node_modules", "{{cookiecutter.slug}}"}

_FENCED = re.compile(r"^```.*?^```", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(?P<title>.+?) *#*$", re.M)


def _skipped(part: str) -> bool:
    return part in SKIPPED_DIRS or (part.startswith(".") and part not in KEPT_HIDDEN)


def markdown_files(root: Path) -> list[Path]:
    """The project's Markdown files."""
    found = root.rglob("*.md")
    return sorted(p for p in found if not any(map(_skipped, p.relative_to(root).parts)))


def prose(text: str) -> str:
    """`text` without its code, where a link is an example rather than a link."""
    return _INLINE_CODE.sub("", _FENCED.sub("", text))


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(m.group("title")) for m in _HEADING.finditer(prose(path.read_text()))}


def broken_links(path: Path) -> list[str]:
    """Each relative link of `path` that leads nowhere, as `target: why`."""
    problems = []
    for match in _LINK.finditer(prose(path.read_text())):
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            problems.append(f"{target}: no heading #{fragment} in {linked.name}")
    return problems


def test_every_relative_markdown_link_leads_to_a_file_and_heading() -> None:
    found = {
        str(path.relative_to(ROOT)): broken
        for path in markdown_files(ROOT)
        if (broken := broken_links(path))
    }
    assert found == {}


def test_broken_links_names_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Has this\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#has-this) [self](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [no heading](other.md#not-there) `[code](missing.md)`\n"
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#not-there: no heading #not-there in other.md",
    ]
