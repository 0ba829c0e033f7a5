"""What every service repeats at its wiring: its manifest ([tool.trademesh.service]), its
platform parts and HTTP app, the about route, the lifespan and the runtime dependency."""

from trademesh_service.about import About, about_router
from trademesh_service.lifespan import Lifespan, LifespanSettings, service_lifespan
from trademesh_service.manifest import ServiceManifest, service_manifest
from trademesh_service.runtime import runtime_dependency
from trademesh_service.wiring import Wiring, service_app, wire

__all__ = [
    "About",
    "Lifespan",
    "LifespanSettings",
    "ServiceManifest",
    "Wiring",
    "about_router",
    "runtime_dependency",
    "service_app",
    "service_lifespan",
    "service_manifest",
    "wire",
]
