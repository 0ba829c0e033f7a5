"""What every service repeats at its wiring: its manifest ([tool.trademesh.service]) and the about
route."""

from trademesh_service.about import About, about_router
from trademesh_service.manifest import ServiceManifest, service_manifest

__all__ = [
    "About",
    "ServiceManifest",
    "about_router",
    "service_manifest",
]
