"""The base of every event: frozen, strict about unknown fields, with its CloudEvents type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _type_is_required(schema: dict[str, Any]) -> None:
    """In the JSON Schema `type` is required: it has a default in Python, never on the wire."""
    required = schema.setdefault("required", [])
    if "type" in schema.get("properties", {}) and "type" not in required:
        required.insert(0, "type")


class Event(BaseModel):
    """Every event has a `type` literal field: its CloudEvents `ce_type` and JSON discriminator."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_type_is_required)

    type: str

    @classmethod
    def event_type(cls) -> str:
        """The CloudEvents type of this event class (the default of its `type` literal)."""
        default = cls.model_fields["type"].default
        if not isinstance(default, str) or not default:
            raise TypeError(f"{cls.__name__} has no default `type`")
        return default
