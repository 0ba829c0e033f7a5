{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The {{ cookiecutter.slug }} service's HTTP API: one router per resource, mounted under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from {{ cookiecutter.package }}.api import activity{% if produces %}, events{% endif %}


def api_router() -> APIRouter:
    router = APIRouter()
    router.include_router(activity.router)
{%- if produces %}
    router.include_router(events.router)
{%- endif %}
    return router
