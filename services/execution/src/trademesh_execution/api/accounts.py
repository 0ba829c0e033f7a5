"""/api/v1/accounts: the caller's trading accounts, their positions with PnL, fills, cancel-all;
for exchange accounts, a connectivity test, reconciliation on request and its discrepancies."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self
from uuid import UUID, uuid4

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from trademesh_events.ids import AccountId
from trademesh_events.money import Amount, MoneyAmount
from trademesh_exchange.exchanges import known_exchange
from trademesh_http import ProblemError
from trademesh_http.caller import CallerDep as RoleDep
from trademesh_http.pagination import Page, PageDep, paginate
from trademesh_keystore import mask
from trademesh_trading.buying_power import AccountTerms, MarginMode
from trademesh_trading.currencies import in_currency, quote_currency

from trademesh_execution.api.deps import CallerDep, RuntimeDep, own_account, owned
from trademesh_execution.credentials import Credentials, NoKeystore
from trademesh_execution.engine import unrealised
from trademesh_execution.store import AccountRow
from trademesh_execution.usecases.accounts import change_terms, open_account
from trademesh_execution.usecases.discrepancies import Discrepancies
from trademesh_execution.venues import (
    MalformedResponse,
    VenueError,
    VenueRejected,
    VenueTimeout,
    VenueUnavailable,
)

router = APIRouter(prefix="/accounts", tags=["accounts"])
DEFAULT_CURRENCY = "USDT"  # an exchange account's settlement currency unless told


class AccountCreate(BaseModel):
    """A paper account (simulated cash on the paper venue), or an exchange account: the ccxt id
    of the exchange as its venue, with its API key and secret. The key and secret are sealed at
    once (trademesh_keystore) and never returned; lists show the key masked."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    venue: str = Field("paper", pattern=r"^[a-z0-9_]{1,32}$", description="`paper` or a ccxt id.")
    cash: MoneyAmount = Field(
        Decimal(100_000), gt=0, max_digits=30, decimal_places=8, description="Paper cash."
    )
    api_key: SecretStr | None = Field(None, description="Exchange accounts only.")
    secret: SecretStr | None = Field(None, description="Exchange accounts only.")
    margin_mode: MarginMode = Field(
        MarginMode.CASH,
        description="`cash`: no borrowing, a sell needs the asset held unless `allow_short`; "
        "`margin`: gross exposure up to `max_leverage` x equity (paper charges no financing).",
    )
    max_leverage: Amount = Field(
        Decimal(1), ge=1, le=100, max_digits=6, decimal_places=2, description="Admin only."
    )
    allow_short: bool = False
    currency: str | None = Field(
        None,
        pattern=r"^[A-Z0-9]{1,16}$",
        description="Exchange accounts only: the settlement currency (default `USDT`). Buying "
        "power is the venue's total of it, checked for orders quoted in it.",
    )

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        exchange = self.venue != "paper"
        if exchange != (self.api_key is not None) or exchange != (self.secret is not None):
            raise ValueError(
                "an exchange account needs api_key and secret; a paper account takes neither"
            )
        if exchange and not known_exchange(self.venue):
            raise ValueError(f"unknown exchange {self.venue!r} (a ccxt exchange id)")
        if not exchange and self.currency is not None:
            raise ValueError("a paper account's cash has no currency: only an exchange account's")
        if exchange and self.currency is None:
            self.currency = DEFAULT_CURRENCY
        if self.margin_mode is MarginMode.CASH and self.max_leverage != 1:
            raise ValueError("a cash account borrows nothing: its max_leverage is 1")
        for value in (self.api_key, self.secret):
            if value is not None and not 8 <= len(value.get_secret_value()) <= 512:
                raise ValueError("api_key and secret are 8 to 512 characters")
        return self


class AccountOut(BaseModel):
    account_id: UUID
    name: str
    venue: str
    cash: MoneyAmount
    created_at: datetime
    api_key_masked: str | None = Field(None, description="Exchange accounts: the key, masked.")
    margin_mode: MarginMode
    max_leverage: Amount
    allow_short: bool
    currency: str | None = Field(
        None, description="Exchange accounts: the settlement currency; null for a paper account."
    )


class PositionOut(BaseModel):
    instrument_id: str
    quantity: Amount
    avg_price: Amount
    realised_pnl: MoneyAmount = Field(description="Net of fees.")
    fees: MoneyAmount
    last_price: Amount | None
    unrealised_pnl: MoneyAmount | None


class PnlOut(BaseModel):
    account_id: UUID
    cash: MoneyAmount
    equity: MoneyAmount | None = Field(description="Cash plus positions at their last prices.")
    realised_pnl: MoneyAmount
    unrealised_pnl: MoneyAmount | None
    positions: list[PositionOut]


class FillOut(BaseModel):
    trade_id: str
    client_order_id: str
    instrument_id: str
    side: str
    quantity: Amount
    price: Amount
    fee: MoneyAmount
    fee_currency: str
    liquidity: str
    ts: datetime


def _out(account: AccountRow) -> AccountOut:
    return AccountOut(
        account_id=account.account_id,
        name=account.name,
        venue=account.venue,
        cash=in_currency(account.cash, account.currency),
        created_at=account.created_at,
        api_key_masked=account.api_key_masked,
        margin_mode=MarginMode(account.margin_mode),
        max_leverage=account.max_leverage,
        allow_short=account.allow_short,
        currency=account.currency,
    )


@router.post("", status_code=201, summary="Open a paper account")
async def create_account(
    body: AccountCreate, caller: CallerDep, who: RoleDep, runtime: RuntimeDep, response: Response
) -> AccountOut:
    if body.max_leverage != 1 and who.role != "admin":
        raise ProblemError(
            403, "Forbidden", "Only an admin sets max_leverage.", type="/problems/forbidden"
        )
    account_id = AccountId(uuid4())
    sealed: str | None = None
    masked: str | None = None
    if body.api_key is not None and body.secret is not None:
        try:
            sealed = await runtime.credentials.seal(
                account_id, body.venue, Credentials(body.api_key, body.secret)
            )
        except NoKeystore:
            raise ProblemError(
                503,
                "No keystore",
                "Exchange credentials cannot be stored: no keystore master key is configured.",
            ) from None
        masked = mask(body.api_key)
    account = AccountRow(
        account_id,
        caller,
        body.name,
        body.venue,
        body.cash,
        datetime.now(UTC),
        sealed,
        masked,
        margin_mode=body.margin_mode.value,
        max_leverage=body.max_leverage,
        allow_short=body.allow_short,
        currency=body.currency,
    )
    assert runtime.db is not None
    await open_account(
        runtime.db,
        runtime.store,
        runtime.bus.outbox,
        account,
        fee_bps=runtime.settings.paper_fee_bps,
        now=account.created_at,
    )
    if account.credentials is not None:  # its buying power is the venue's: read it now
        runtime.balances.request(account.account_id)
    response.headers["Location"] = f"/api/v1/accounts/{account.account_id}"
    return _out(account)


class TermsIn(BaseModel):
    """An account's buying-power terms. A holder may change the mode and shorting; only an admin
    sets `max_leverage` (403 problem otherwise). Left out: `max_leverage` is kept for a margin
    account, 1 for a cash one."""

    model_config = ConfigDict(extra="forbid")

    margin_mode: MarginMode
    max_leverage: Amount | None = Field(None, ge=1, le=100, max_digits=6, decimal_places=2)
    allow_short: bool = False


@router.patch("/{account_id}", summary="Change the account's margin mode and shorting")
async def change_account(
    account_id: AccountId, body: TermsIn, caller: CallerDep, who: RoleDep, runtime: RuntimeDep
) -> AccountOut:
    found = await runtime.store.account(account_id)
    admin = who.role == "admin"
    account = found if admin and found is not None else owned(found, account_id, caller)
    kept = account.max_leverage if body.margin_mode is MarginMode.MARGIN else Decimal(1)
    leverage = body.max_leverage if body.max_leverage is not None else kept
    if leverage != account.max_leverage and not admin:
        raise ProblemError(
            403, "Forbidden", "Only an admin sets max_leverage.", type="/problems/forbidden"
        )
    if body.margin_mode is MarginMode.CASH and leverage != 1:
        raise ProblemError(
            422,
            "Invalid terms",
            "A cash account borrows nothing: its max_leverage is 1.",
            type="/problems/invalid-terms",
        )
    assert runtime.db is not None
    terms = AccountTerms(
        body.margin_mode, leverage, body.allow_short, runtime.settings.paper_fee_bps
    )
    changed = await change_terms(
        runtime.db, runtime.store, runtime.bus.outbox, account_id, terms, now=datetime.now(UTC)
    )
    if changed is not None and changed.credentials is not None:
        runtime.balances.request(account_id)  # the new terms go to risk with the balances
    return _out(owned(changed, account_id, changed.user_id if changed else caller))


@router.delete("/{account_id}", status_code=204, summary="Delete an account without open orders")
async def delete_account(account_id: AccountId, caller: CallerDep, runtime: RuntimeDep) -> Response:
    await own_account(runtime, account_id, caller)
    if not await runtime.store.delete_account(account_id):
        raise ProblemError(409, "Open orders", "Cancel the account's open orders first.")
    return Response(status_code=204)


class AccountPage(Page[AccountOut]):
    pass


@router.get("", summary="The caller's accounts, oldest first")
async def list_accounts(caller: CallerDep, runtime: RuntimeDep, request: PageDep) -> AccountPage:
    after = request.after(datetime, UUID)
    rows = await runtime.store.accounts_page(caller, request.fetch, after)
    items, cursor = paginate(rows, request, lambda a: (a.created_at, a.account_id))
    return AccountPage(items=[_out(a) for a in items], next_cursor=cursor)


@router.get("/{account_id}", summary="One of the caller's accounts")
async def get_account(account_id: AccountId, caller: CallerDep, runtime: RuntimeDep) -> AccountOut:
    return _out(await own_account(runtime, account_id, caller))


@router.get("/{account_id}/pnl", summary="Positions at average cost, realised and unrealised PnL")
async def pnl(account_id: AccountId, caller: CallerDep, runtime: RuntimeDep) -> PnlOut:
    found, held = await runtime.store.valuation(account_id)
    account = owned(found, account_id, caller)
    # Sums are of the exact figures; each is rounded once, when shown: a position's to its
    # instrument's quote currency, the account's to its own (a paper account has none: 8 places).
    currency = account.currency
    out: list[PositionOut] = []
    valued, open_pnl, holdings, realised = True, Decimal(0), Decimal(0), Decimal(0)
    for p, last in held:
        quote = quote_currency(p.instrument_id)
        pnl_open = None if last is None else unrealised(p, last)
        valued = valued and (last is not None or p.quantity == 0)
        open_pnl += pnl_open or Decimal(0)
        holdings += p.quantity * last if last is not None else Decimal(0)
        realised += p.realised_pnl
        out.append(
            PositionOut(
                instrument_id=p.instrument_id,
                quantity=p.quantity,
                avg_price=p.avg_price,
                realised_pnl=in_currency(p.realised_pnl, quote),
                fees=in_currency(p.fees, quote),
                last_price=last,
                unrealised_pnl=None if pnl_open is None else in_currency(pnl_open, quote),
            )
        )
    return PnlOut(
        account_id=account_id,
        cash=in_currency(account.cash, currency),
        equity=in_currency(account.cash + holdings, currency) if valued else None,
        realised_pnl=in_currency(realised, currency),
        unrealised_pnl=in_currency(open_pnl, currency) if valued else None,
        positions=out,
    )


class EquityPoint(BaseModel):
    ts: datetime
    cash: MoneyAmount
    equity: MoneyAmount


class EquityPage(Page[EquityPoint]):
    pass


@router.get("/{account_id}/equity", summary="The account's sampled equity, oldest first")
async def equity_history(
    account_id: AccountId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
    since: datetime | None = None,
) -> EquityPage:
    currency = (await own_account(runtime, account_id, caller)).currency
    after = request.after(datetime)
    rows = await runtime.store.equity_history(
        account_id, since, request.fetch, after[0] if after else None
    )
    items, cursor = paginate(rows, request, lambda r: (r["ts"],))
    return EquityPage(
        items=[
            EquityPoint(
                ts=r["ts"],
                cash=in_currency(r["cash"], currency),
                equity=in_currency(r["equity"], currency),
            )
            for r in items
        ],
        next_cursor=cursor,
    )


class FillPage(Page[FillOut]):
    pass


@router.get("/{account_id}/fills", summary="The account's fills, newest first")
async def fills(
    account_id: AccountId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
) -> FillPage:
    await own_account(runtime, account_id, caller)
    rows = await runtime.store.fills_of(account_id, request.fetch, request.after(datetime, str))
    items, cursor = paginate(rows, request, lambda r: (r["ts"], r["trade_id"]))
    return FillPage(
        items=[
            FillOut(
                **{k: row[k] for k in FillOut.model_fields if k != "fee"},
                fee=in_currency(row["fee"], row["fee_currency"]),
            )
            for row in items
        ],
        next_cursor=cursor,
    )


@router.post("/{account_id}/cancel-all", summary="Cancel every open order of the account")
async def cancel_all(
    account_id: AccountId, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, int]:
    await own_account(runtime, account_id, caller)
    assert runtime.db is not None
    cancelled = 0
    async with runtime.db.transaction() as conn:
        for order in await runtime.store.open_orders(conn, account_id):
            await runtime.orders.cancel(
                conn, order.client_order_id, "cancel-all by the user", account_id
            )
            cancelled += 1
    return {"cancelled": cancelled}


class ConnectivityOut(BaseModel):
    """Whether the account's venue answers its credentials: `ok`, how long a signed call took,
    and, when it failed, what kind of failure (`unavailable`: the venue could not be reached;
    `timeout`; `rejected`: it refused, e.g. a wrong key or secret or missing permissions;
    `malformed`: it answered nonsense). The message never carries the key or secret."""

    account_id: UUID
    venue: str
    ok: bool
    latency_ms: float
    open_orders: int | None = Field(None, description="The venue's open orders, when it answered.")
    error: str | None = None
    message: str | None = None


_FAILURES = {
    VenueUnavailable: "unavailable",
    VenueTimeout: "timeout",
    VenueRejected: "rejected",
    MalformedResponse: "malformed",
}


@router.post(
    "/{account_id}/test",
    summary="Test the account's connectivity: a signed call to its venue with its credentials",
)
async def test_connectivity(
    account_id: AccountId, caller: CallerDep, runtime: RuntimeDep
) -> ConnectivityOut:
    account = await own_account(runtime, account_id, caller)
    if account.credentials is None:  # the paper venue is this service itself
        return ConnectivityOut(account_id=account_id, venue=account.venue, ok=True, latency_ms=0)
    started = time.perf_counter()
    try:
        venue = await runtime.live.open_venue(account)
    except NoKeystore as exc:
        raise ProblemError(503, "No keystore", str(exc)) from None
    try:
        listed = await venue.open_orders()
    except VenueError as exc:
        kind = next(name for cls, name in _FAILURES.items() if isinstance(exc, cls))
        return ConnectivityOut(
            account_id=account_id,
            venue=account.venue,
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=kind,
            message=str(exc)[:500],
        )
    finally:
        await venue.close()
    return ConnectivityOut(
        account_id=account_id,
        venue=account.venue,
        ok=True,
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        open_orders=len(listed),
    )


@router.post(
    "/{account_id}/reconcile",
    summary="Reconcile an exchange account with its venue now: open orders, lookups, trades",
)
async def reconcile(
    account_id: AccountId, caller: CallerDep, runtime: RuntimeDep
) -> dict[str, Any]:
    account = await own_account(runtime, account_id, caller)
    if account.credentials is None:
        raise ProblemError(
            409, "Nothing to reconcile", "A paper account's venue is this service's own books."
        )
    result = await runtime.reconciler.account(account_id)
    if result is None:
        raise ProblemError(409, "Reconciliation running", "The account is being reconciled now.")
    return asdict(result)


class DiscrepancyOut(BaseModel):
    kind: str
    client_order_id: str | None
    instrument_id: str | None
    venue_ref: str | None
    detail: str
    resolution: str | None = Field(description="What the service did; null: for a human.")
    detected_at: datetime


class DiscrepancyPage(Page[DiscrepancyOut]):
    pass


@router.get(
    "/{account_id}/discrepancies",
    summary="What reconciliation found disagreeing with the venue, newest first",
)
async def discrepancies(
    account_id: AccountId,
    caller: CallerDep,
    runtime: RuntimeDep,
    request: PageDep,
) -> DiscrepancyPage:
    await own_account(runtime, account_id, caller)
    assert runtime.db is not None
    after = request.after(datetime, int)
    rows = await Discrepancies.of_account(runtime.db.pool, account_id, request.fetch, after)
    items, cursor = paginate(rows, request, lambda r: (r["detected_at"], r["id"]))
    return DiscrepancyPage(items=[DiscrepancyOut(**dict(row)) for row in items], next_cursor=cursor)
