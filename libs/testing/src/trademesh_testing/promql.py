"""The dashboards' and alert rules' PromQL, for the tests that check it: the metric names each
expression reads, and the queries as Prometheus takes them (Grafana's variables filled in)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from trademesh_testing.platform import ROOT

DASHBOARDS = ROOT / "charts/trademesh/files/dashboards"
RULES = ROOT / "charts/trademesh/files/rules/trademesh.rules.yaml"

# Grafana's own variables, with the values the tests give them.
GRAFANA_BUILTINS = {"__rate_interval": "30s", "__interval": "15s", "__range": "5m"}

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    | (?P<number>0[xX][0-9a-fA-F]+
        |(?:\d+(?:ms|[smhdwy]))+
        |(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<open>[({\[])
    | (?P<close>[)}\]])
    | (?P<space>\s+)
    | (?P<operator>=~|!~|!=|==|<=|>=|[-+*/%^<>=,@:])
    """,
    re.VERBOSE,
)
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
     "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
# Followed by a parenthesised list of label names, never of expressions.
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = _AGGREGATIONS | _LABEL_LISTS | {"and", "or", "unless", "bool", "offset", "atan2"}
_LITERALS = frozenset({"inf", "nan"})


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) of every token but spaces; ValueError at a character PromQL does not have."""
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(expr):
        found = _TOKEN.match(expr, at)
        if found is None:
            raise ValueError(f"unexpected {expr[at]!r} at {at} in {expr!r}")
        kind = found.lastgroup or ""
        if kind != "space":
            out.append((kind, found.group()))
        at = found.end()
    return out


def _check_balanced(items: list[tuple[str, str]], expr: str) -> None:
    pairs = {")": "(", "}": "{", "]": "["}
    stack: list[str] = []
    for kind, text in items:
        if kind == "open":
            stack.append(text)
        elif kind == "close" and (not stack or stack.pop() != pairs[text]):
            raise ValueError(f"unbalanced brackets in {expr!r}")
    if stack:
        raise ValueError(f"unbalanced brackets in {expr!r}")


def _closing(items: list[tuple[str, str]], start: int) -> int:
    """The index of the bracket that closes the one at `start`."""
    depth = 0
    for n in range(start, len(items)):
        kind = items[n][0]
        depth += kind == "open"
        depth -= kind == "close"
        if depth == 0:
            return n
    raise ValueError(f"unbalanced brackets in {' '.join(t for _, t in items)!r}")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions (followed by
    `(`), aggregations, keywords or literals; label matchers, label lists after by/without/on/
    ignoring/group_left/group_right, ranges and subqueries, durations and strings skipped; a
    `{__name__="..."}` matcher counts as its name."""
    items = tokens(expr)
    _check_balanced(items, expr)
    names: set[str] = set()
    n = 0
    while n < len(items):
        kind, text = items[n]
        following = items[n + 1] if n + 1 < len(items) else ("", "")
        if kind == "open" and text == "{":
            end = _closing(items, n)
            inner = items[n + 1 : end]
            for m in range(len(inner) - 2):
                if inner[m] == ("ident", "__name__") and inner[m + 1] == ("operator", "="):
                    names.add(inner[m + 2][1][1:-1])
            n = end + 1
            continue
        if kind == "open" and text == "[":
            n = _closing(items, n) + 1
            continue
        if kind == "ident":
            if text in _LABEL_LISTS and following == ("open", "("):
                n = _closing(items, n + 1) + 1
                continue
            if (
                following != ("open", "(")
                and text not in _KEYWORDS
                and text.lower() not in _LITERALS
            ):
                names.add(text)
        n += 1
    return names


@dataclass(frozen=True)
class Query:
    where: str  # "<dashboard file>: <panel title>" or "rule <alert name>"
    expr: str


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard file, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included, rows themselves left out."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_queries() -> list[Query]:
    return [
        Query(f"{name}: {panel.get('title')}", target["expr"])
        for name, dashboard in dashboards().items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def rules() -> list[dict[str, Any]]:
    """Every rule of the rule file, each with its group's name under `group`."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [{**rule, "group": group["name"]} for group in groups for rule in group["rules"]]


def rule_queries() -> list[Query]:
    return [
        Query(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]) for rule in rules()
    ]


def variables_of(expr: str) -> set[str]:
    """The Grafana variables an expression uses ($name, ${name}, ${name:format}, [[name]])."""
    found = re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", expr)
    return {next(part for part in groups if part) for groups in found}


def fill_variables(expr: str, values: dict[str, str]) -> str:
    """The expression with every variable replaced by its value in `values` or the built-ins."""
    every = {**GRAFANA_BUILTINS, **values}

    def value(match: re.Match[str]) -> str:
        name = next(part for part in match.groups() if part)
        if name not in every:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return every[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def queried_names() -> set[str]:
    """Every metric name a dashboard panel or an alert rule reads."""
    return {
        name for query in dashboard_queries() + rule_queries() for name in metric_names(query.expr)
    }
