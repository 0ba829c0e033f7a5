"""What every service repeats at its wiring: its manifest ([tool.trademesh.service]), the about
route and the lifespan."""

from trademesh_service.about import About, about_router
from trademesh_service.lifespan import Lifespan, LifespanSettings, service_lifespan
from trademesh_service.manifest import ServiceManifest, service_manifest

__all__ = [
    "About",
    "Lifespan",
    "LifespanSettings",
    "ServiceManifest",
    "about_router",
    "service_lifespan",
    "service_manifest",
]
