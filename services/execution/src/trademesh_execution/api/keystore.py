"""/api/v1/keystore: move sealed exchange credentials to the current master key (admin)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from trademesh_http import ProblemError

from trademesh_execution.api.deps import AdminDep, RuntimeDep
from trademesh_execution.credentials import NoKeystore

router = APIRouter(prefix="/keystore", tags=["keystore"])


class RewrapOut(BaseModel):
    rewrapped: int
    current: int


@router.post("/rewrap", summary="Re-wrap every sealed record with the current master key")
async def rewrap(admin: AdminDep, runtime: RuntimeDep) -> RewrapOut:
    """After a master key rotation: each record's data key is wrapped again, without the secret
    being decrypted (Vault transit rewraps inside Vault)."""
    moved = current = 0
    try:
        for account in await runtime.store.sealed_accounts():
            assert account.credentials is not None
            record = await runtime.credentials.rewrap(
                account.account_id, account.venue, account.credentials
            )
            if record is None:
                current += 1
                continue
            await runtime.store.replace_credentials(account.account_id, record)
            moved += 1
    except NoKeystore:
        raise ProblemError(503, "No keystore", "No keystore master key is configured.") from None
    return RewrapOut(rewrapped=moved, current=current)
