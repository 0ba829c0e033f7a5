"""The README's repository layout and its diagram name exactly the libraries and services there are.

- The code block under `## Repository layout` lists `libs/` and `services/` at the top level,
  each followed by its folders, indented (`  bus/  the Kafka bus ...`): every folder of `libs/`
  and of `services/` must be listed there, and nothing that is not one.
- The `mermaid` diagram under `## How it fits together` draws the services as plain (rectangle)
  nodes, named by their folder (`gateway`, or `marketdata[market-data]` where the id cannot hold
  a dash); clients are stadiums `([...])` and stores cylinders `[(...)]`. Its rectangles must be
  exactly the services.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

_SECTION = re.compile(r"^## (?P<title>.+)$", re.M)
_CODE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S)
_ENTRY = re.compile(r"^(?P<indent> *)(?P<name>[^\s/]+)/(?:\s|$)")
_EDGE_LABEL = re.compile(r"\|[^|]*\|")
_ARROW = re.compile(r"\s*(?:-\.->|-->|---|==>)\s*")
_NODE = re.compile(r"^(?P<id>[A-Za-z][\w-]*)\s*(?P<shape>\(\[.*\]\)|\[\(.*\)\]|\[.*\]|\(.*\))?$")
_NOT_NODES = ("flowchart", "graph", "subgraph", "end", "%%", "classDef", "class ", "style ")


def section(text: str, title: str) -> str:
    """The text under `## title`, up to the next `## ` heading."""
    matches = list(_SECTION.finditer(text))
    for n, match in enumerate(matches):
        if match.group("title").strip() == title:
            end = matches[n + 1].start() if n + 1 < len(matches) else len(text)
            return text[match.end() : end]
    raise AssertionError(f"README.md has no '## {title}' section")


def code_block(text: str, lang: str = "") -> str:
    """The first fenced code block of `text` in language `lang` ("" for a plain one)."""
    for match in _CODE.finditer(text):
        if match.group("lang") == lang:
            return match.group("body")
    raise AssertionError(f"no ```{lang} block")


def listed_under(layout: str, top: str) -> set[str]:
    """The folders the layout block lists, indented, under its top-level entry `top/`."""
    names: set[str] = set()
    inside = False
    for line in layout.splitlines():
        entry = _ENTRY.match(line)
        if line and not line.startswith(" "):
            # A top-level line (an entry or a list of files) ends the previous entry's folders;
            # an indented line that names no folder (a wrapped description) does not.
            inside = entry is not None and entry.group("name") == top
        elif inside and entry is not None:
            names.add(entry.group("name"))
    return names


def folders(parent: Path) -> set[str]:
    """The folders of `parent`, but hidden ones and caches."""
    return {p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}


def layout_problems(readme: str, root: Path) -> list[str]:
    """What the README's layout block says that the tree contradicts, one line each."""
    layout = code_block(section(readme, "Repository layout"))
    problems = []
    for top in ("libs", "services"):
        listed, present = listed_under(layout, top), folders(root / top)
        if not listed:
            problems.append(f"the layout lists no folder under {top}/")
        problems += [f"{top}/{n}/ is missing from the layout" for n in sorted(present - listed)]
        problems += [
            f"the layout names {top}/{n}/, which does not exist" for n in sorted(listed - present)
        ]
    return problems


def diagram_services(diagram: str) -> set[str]:
    """The names of the rectangle nodes of a mermaid flowchart: the label of `id[label]`, else the
    id; ids drawn with another shape anywhere (stadium, cylinder, round) are not services."""
    shapes: dict[str, str | None] = {}
    for raw in diagram.splitlines():
        line = raw.strip()
        if not line or line.startswith(_NOT_NODES):
            continue
        for part in _ARROW.split(_EDGE_LABEL.sub(" ", line)):
            for token in part.split("&"):
                node = _NODE.match(token.strip())
                if node is None:
                    raise AssertionError(f"cannot read the diagram's node {token.strip()!r}")
                if node.group("shape") is not None or node.group("id") not in shapes:
                    shapes[node.group("id")] = node.group("shape")
    names = set()
    for node_id, shape in shapes.items():
        if shape is None:
            names.add(node_id)
        elif shape.startswith("[") and not shape.startswith("[("):
            names.add(shape[1:-1].strip().strip("\"'"))
    return names


def diagram_problems(readme: str, root: Path) -> list[str]:
    drawn = diagram_services(code_block(section(readme, "How it fits together"), "mermaid"))
    present = folders(root / "services")
    return [f"the diagram lacks the service {n}" for n in sorted(present - drawn)] + [
        f"the diagram draws {n}, which is no folder of services/" for n in sorted(drawn - present)
    ]


def test_readme_layout_lists_exactly_the_folders_of_libs_and_services() -> None:
    assert layout_problems(README.read_text(), ROOT) == []


def test_readme_diagram_draws_exactly_the_services() -> None:
    assert diagram_problems(README.read_text(), ROOT) == []


_SAMPLE = """# x

## How it fits together

```mermaid
flowchart LR
    user([client]) -->|HTTPS| gateway
    gateway -->|HTTP| risk & pricing[pricing-x]
    risk --- pg[(Postgres)]
```

## Repository layout

```
libs/         shared libraries
  bus/        the bus
  ghost/      gone
services/     one per service
  gateway/    the API
scripts/      scripts
docker-compose.yml, Tiltfile
```
"""


def _tree(root: Path, libs: tuple[str, ...], services: tuple[str, ...]) -> Path:
    for name in libs:
        (root / "libs" / name).mkdir(parents=True)
    for name in services:
        (root / "services" / name).mkdir(parents=True)
    (root / "libs" / "__pycache__").mkdir()
    return root


def test_layout_check_when_a_folder_is_unlisted_or_a_listed_one_is_gone_names_both(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path, ("bus", "events"), ("gateway", "risk"))
    assert layout_problems(_SAMPLE, root) == [
        "libs/events/ is missing from the layout",
        "the layout names libs/ghost/, which does not exist",
        "services/risk/ is missing from the layout",
    ]


def test_diagram_check_counts_rectangles_only_and_names_missing_and_unknown_services(
    tmp_path: Path,
) -> None:
    root = _tree(tmp_path, ("bus",), ("gateway", "risk", "audit"))
    assert diagram_problems(_SAMPLE, root) == [
        "the diagram lacks the service audit",
        "the diagram draws pricing-x, which is no folder of services/",
    ]
