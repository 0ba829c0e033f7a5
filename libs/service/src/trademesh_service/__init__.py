"""What every service repeats at its wiring: its manifest ([tool.trademesh.service])."""

from trademesh_service.manifest import ServiceManifest, service_manifest

__all__ = [
    "ServiceManifest",
    "service_manifest",
]
