{%- set consumes = cookiecutter.consumes.split(',')|map('trim')|select|list -%}
{%- set produces = cookiecutter.produces.split(',')|map('trim')|select|list -%}
"""The {{ cookiecutter.slug }} service's settings: one frozen class, validated at start."""

from __future__ import annotations

from pydantic import Field
from trademesh_config import ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: str = Field("{{ cookiecutter.slug }}", pattern=r"^[a-z][a-z0-9-]{1,40}$")
    http_port: int = Field({{ cookiecutter.http_port }}, ge=0, le=65535)
{%- if cookiecutter.owns_schema %}
    database_schema: str = Field(
        "{{ cookiecutter.schema }}",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The Postgres schema this service owns; no other service reads it.",
    )
{%- endif %}
    consumer_group: str = Field(
        "{{ cookiecutter.slug }}",
        pattern=r"^[a-z][a-z0-9._-]{0,100}$",
        description="Prefix of the Kafka consumer groups (one per consumed topic).",
    )
{%- if cookiecutter.owns_schema and produces %}
    outbox_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="The outbox relay's recovery poll interval, in seconds."
    )
{%- endif %}
