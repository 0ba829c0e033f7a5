"""No secret in the repository beyond the audited baseline: detect-secrets over the tracked files,
as the pre-commit hook and the secrets workflow run it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("detect_secrets", reason="detect-secrets, of the deploy dependency group")

from detect_secrets.core import baseline
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import default_settings

pytestmark = [pytest.mark.unit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / ".secrets.baseline"


def _tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listed = subprocess.run(
        [git, "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    # Deleted but not yet staged files are still listed.
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


def _audited() -> Any:
    return json.loads(BASELINE.read_text())


def test_the_baseline_is_audited_and_holds_no_real_secret() -> None:
    audited = _audited()
    findings = [item for items in audited["results"].values() for item in items]
    assert all(item.get("is_secret") is False for item in findings), (
        "every baseline entry is audited (detect-secrets audit .secrets.baseline) as not a secret"
    )
    excluded = [f for f in audited["filters_used"] if f["path"].endswith("should_exclude_file")]
    (pattern,) = excluded[0]["pattern"]
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert f"exclude: {pattern}" in config, "the hook and the baseline exclude the same files"


def test_no_new_secret_in_the_tracked_files(monkeypatch: pytest.MonkeyPatch) -> None:
    files = _tracked_files()
    monkeypatch.chdir(ROOT)
    with default_settings():
        known = baseline.load(baseline.load_from_file(str(BASELINE)), str(BASELINE))
        found = SecretsCollection()
        # File by file in this process (about 15 s of CPU for the whole tree): scan_files forks
        # a multiprocessing pool (even of one), and a fork of a test worker that runs threads
        # (telemetry, thread pools of earlier tests) can hang for good.
        for name in files:
            found.scan_file(name)
        new = found - known
        lines = {(name, s.secret_hash, s.type): s.line_number for name, s in known}
        moved = [
            f"{name}:{lines[(name, s.secret_hash, s.type)]}->{s.line_number}"
            for name, s in found
            if lines.get((name, s.secret_hash, s.type), s.line_number) != s.line_number
        ]
    report = [f"{name}:{secret.line_number} {secret.type}" for name, secret in new]
    assert not report, (
        "detect-secrets found secrets the baseline does not know: remove them, mark a dev-only "
        "value `# pragma: allowlist secret`, or audit a false positive into .secrets.baseline "
        f"(see .pre-commit-config.yaml): {report}"
    )
    # The pre-commit hook rewrites a baseline whose line numbers moved, and fails the run.
    assert not moved, (
        "known findings moved: `detect-secrets scan --baseline .secrets.baseline $(git ls-files)` "
        f"updates the baseline: {moved}"
    )
