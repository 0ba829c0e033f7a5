"""Audit events, keyed by chain: checkpoints of the audit log's keyed hash chain."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from trademesh_events.base import Event
from trademesh_events.ids import UtcDateTime

Hex32 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""32 bytes in lowercase hex."""

ChainName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_][a-z0-9_-]{0,62}$")]
"""Which audit log: the name of the Postgres schema it lives in."""

KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class ChainCheckpointed(Event):
    """The audit log's chain link at `seq`, as the audit service read it, signed (HMAC-SHA256)
    with the chain key `key_id`. Published periodically and on demand, so that a rewrite of the
    log inside its database is found against a record that database cannot change. The audit
    service defines the signature (trademesh_audit.engine.checkpoint_signature)."""

    type: Literal["trademesh.audit.chain_checkpointed"] = "trademesh.audit.chain_checkpointed"
    chain: ChainName
    seq: Annotated[int, Field(ge=1)]
    link: Hex32
    key_id: KeyId
    signature: Hex32
    ts: UtcDateTime
