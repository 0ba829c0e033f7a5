"""The base of every event: frozen, strict about unknown fields, with its CloudEvents type."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """Every event has a `type` literal field: its CloudEvents `ce_type` and JSON discriminator."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str

    @classmethod
    def event_type(cls) -> str:
        """The CloudEvents type of this event class (the default of its `type` literal)."""
        default = cls.model_fields["type"].default
        if not isinstance(default, str) or not default:
            raise TypeError(f"{cls.__name__} has no default `type`")
        return default
