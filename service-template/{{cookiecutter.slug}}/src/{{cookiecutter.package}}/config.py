"""The {{ cookiecutter.slug }} service's settings: one frozen class, validated at start."""

from __future__ import annotations

from trademesh_config import ConsumerGroup, Port, {% if cookiecutter.owns_schema %}SchemaName, {% endif %}ServiceName, ServiceSettings


class Settings(ServiceSettings):
    """What the service reads from TRADEMESH_* variables (and the secrets provider), on top of
    the platform's Kafka, Postgres, HTTP and logging settings."""

    service_name: ServiceName = "{{ cookiecutter.slug }}"
    http_port: Port = {{ cookiecutter.http_port }}
{%- if cookiecutter.owns_schema %}
    database_schema: SchemaName = "{{ cookiecutter.schema }}"
{%- endif %}
    consumer_group: ConsumerGroup = "{{ cookiecutter.slug }}"
