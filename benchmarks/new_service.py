"""How long `trademesh new-service` takes (its budget: under a minute), on a copy of the
workspace so the repository is not touched.

Measured: the whole command path (checks, cookiecutter render, move into services/, `uv lock`),
and as the in-process baseline the cookiecutter render alone. Best of ROUNDS each.

Last line: BENCH new_service total_s=... render_s=... ratio=... budget_ratio=...
   ratio = render_s / total_s (what share is the template itself); budget_ratio = total_s / 60
   (target: budget_ratio < 1).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from trademesh_cli.scaffold import ServiceSpec, check, new_service, render

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
BUDGET_S = 60.0
SPEC = ServiceSpec(
    slug="bench-demo", consumes=("md.bars.v1", "orders.events.v1"), produces=("orders.intents.v1",)
)


def _workspace(into: Path) -> Path:
    ignore = shutil.ignore_patterns(".venv", ".trademesh", "__pycache__", "*_cache")
    into.mkdir()
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy2(ROOT / name, into / name)
    for name in ("libs", "service-template", "services"):
        shutil.copytree(ROOT / name, into / name, ignore=ignore)
    return into


def main() -> None:
    totals, renders = [], []
    with tempfile.TemporaryDirectory(prefix="bench-new-service-") as tmp:
        for n in range(ROUNDS):
            ws = _workspace(Path(tmp) / f"ws{n}")
            started = time.perf_counter()
            render(check(SPEC, ws), ws / "service-template", Path(tmp) / f"render{n}")
            renders.append(time.perf_counter() - started)
            started = time.perf_counter()
            new_service(SPEC, ws)
            totals.append(time.perf_counter() - started)
    total, rendered = min(totals), min(renders)
    print(f"new-service: {total:.2f}s (render alone {rendered:.2f}s), budget {BUDGET_S:.0f}s")
    print(
        f"BENCH new_service total_s={total:.2f} render_s={rendered:.2f} "
        f"ratio={rendered / total:.2f} budget_ratio={total / BUDGET_S:.3f}"
    )


if __name__ == "__main__":
    main()
