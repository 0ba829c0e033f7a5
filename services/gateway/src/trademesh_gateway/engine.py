"""The gateway's rules, pure: the route table, roles, header hygiene, page caps, event owners.

No I/O and no clock here: the proxy (proxy.py), the API (api/) and the tests all read the same
`ROUTES`, so a route added here is served, documented in /docs and covered by the BOLA and role
tests without anything else to change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

Service = Literal["auth", "market-data", "strategy", "risk", "execution", "audit", "notify"]
SERVICES: tuple[Service, ...] = (
    "auth", "market-data", "strategy", "risk", "execution", "audit", "notify",
)  # fmt: skip

MinRole = Literal["public", "viewer", "trader", "admin"]
ROLE_RANK: Mapping[str, int] = {"viewer": 1, "trader": 2, "admin": 3}

# How a route's resource is kept to its owner:
# - "none": nobody's resource (public routes, the instrument catalogue, admin routes);
# - "caller": a list or a create that the service scopes to the token's user (no id in the path);
# - "service": the path names a user's resource and the service answers 404 for another user's
#   (it compares the row's owner with the token's subject);
# - "account": the path names an account and the service does NOT check its owner (risk keeps
#   limits per account id for every account): the gateway asks execution, which owns accounts,
#   for `GET /api/v1/accounts/{id}` with the caller's token first, and forwards only on a 200.
Ownership = Literal["none", "caller", "service", "account"]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TRADE_SCOPE = "trade"
#: Managing one's own login (API keys, password): only a password session's token has it, never
#: an API key's, so a key can neither mint a key nor revoke one (auth rules the same).
ACCOUNT_SCOPE = "account"


@dataclass(frozen=True)
class Route:
    """One public route: `method path` under /api/v1, served by `service` at `upstream` (the same
    path unless given), for callers of at least `min_role`."""

    method: str
    path: str
    service: Service
    min_role: MinRole
    summary: str
    ownership: Ownership = "none"
    #: The path parameter naming the owned resource (ownership "service" or "account").
    owned: str | None = None
    #: Body fields naming an account that must be the caller's (checked like "account").
    owned_body: tuple[str, ...] = ()
    #: The upstream path when it differs from `path` (same parameters).
    upstream: str | None = None
    #: A route of one's own login (password, API keys): any role, and for a change the
    #: `account` scope rather than `trade`, as auth itself rules (a viewer changes their own
    #: password too; an API key changes nothing there).
    account_holder: bool = False
    #: A 2xx answer means the API key named by this path parameter is revoked: the gateway
    #: refuses it at once, before auth's event reaches it.
    revokes_key: str | None = None
    #: Served by the gateway itself, by this handler of api/ (after the same checks), rather
    #: than forwarded: `service` then names who acts on it next.
    local: str | None = None
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(re.findall(r"{(\w+)}", self.path)))
        if self.ownership in ("service", "account") and self.owned not in self.params:
            raise ValueError(f"{self.method} {self.path}: owned parameter missing")
        if self.owned is not None and self.ownership not in ("service", "account"):
            raise ValueError(f"{self.method} {self.path}: owned parameter without ownership")

    @property
    def public(self) -> bool:
        return self.min_role == "public"

    @property
    def scope(self) -> str | None:
        """The scope a credential needs besides its role: none to read, `account` to change
        one's own login, `trade` to change anything else."""
        if self.method in READ_METHODS or self.public:
            return None
        return ACCOUNT_SCOPE if self.account_holder else TRADE_SCOPE

    def upstream_path(self, values: Mapping[str, str]) -> str:
        """The service's path for these (already percent-encoded) parameter values."""
        template = self.upstream or self.path
        return "/api/v1" + template.format(**{p: values[p] for p in self.params})


def _r(
    method: str, path: str, service: Service, min_role: MinRole, summary: str, **kw: Any
) -> Route:
    return Route(method, path, service, min_role, summary, **kw)


# fmt: off
ROUTES: tuple[Route, ...] = (
    # auth: sessions (public), one's own login, API keys, users (admin)
    _r("POST", "/auth/register", "auth", "public", "Register (open, or awaiting approval)"),
    _r("POST", "/auth/login", "auth", "public", "Log in: an access token and a refresh token"),
    _r("POST", "/auth/refresh", "auth", "public", "A new access and refresh token"),
    _r("POST", "/auth/logout", "auth", "public", "Revoke the session of a refresh token"),
    _r("POST", "/auth/token", "auth", "public", "An access token for an API key"),
    _r("GET", "/auth/jwks", "auth", "public", "The public keys that verify access tokens"),
    _r("GET", "/auth/me", "auth", "viewer", "Who you are", account_holder=True),
    _r("POST", "/auth/password", "auth", "viewer", "Change your password", account_holder=True),
    _r("POST", "/auth/signing-keys/rotate", "auth", "admin", "Rotate the token signing key"),
    _r("GET", "/users", "auth", "admin", "Users, by id"),
    _r("POST", "/users/{user_id}/approve", "auth", "admin", "Approve a registered user"),
    _r("POST", "/users/{user_id}/disable", "auth", "admin", "Disable a user"),
    _r("POST", "/users/{user_id}/enable", "auth", "admin", "Enable a disabled user"),
    _r("PUT", "/users/{user_id}/role", "auth", "admin", "Change a user's role"),
    _r("POST", "/api-keys", "auth", "viewer", "Make an API key (shown once)",
       ownership="caller", account_holder=True),
    _r("GET", "/api-keys", "auth", "viewer", "Your API keys", ownership="caller",
       account_holder=True),
    _r("DELETE", "/api-keys/{key_id}", "auth", "viewer", "Revoke one of your API keys",
       ownership="service", owned="key_id", account_holder=True, revokes_key="key_id"),
    # market-data: the catalogue and history for everyone signed in; feeds for admins (the
    # service itself checks no caller: the gateway is the only door to it)
    _r("GET", "/instruments", "market-data", "viewer", "Instruments with a feed"),
    _r("GET", "/ohlcv", "market-data", "viewer", "OHLCV bars of an instrument"),
    _r("GET", "/prices/last", "market-data", "viewer", "The latest price of an instrument"),
    _r("GET", "/feeds", "market-data", "admin", "Feeds and their state"),
    _r("POST", "/feeds", "market-data", "admin", "Add a feed"),
    _r("GET", "/feeds/{feed_id}", "market-data", "admin", "One feed and its state"),
    _r("POST", "/feeds/{feed_id}/start", "market-data", "admin", "Enable and start a feed"),
    _r("POST", "/feeds/{feed_id}/stop", "market-data", "admin", "Stop and disable a feed"),
    _r("DELETE", "/feeds/{feed_id}", "market-data", "admin", "Stop and delete a feed"),
    # strategy
    _r("GET", "/strategies", "strategy", "viewer", "Every strategy and its parameters"),
    _r("GET", "/strategies/{name}", "strategy", "viewer", "One strategy and its parameters"),
    _r("POST", "/bots", "strategy", "trader", "Start a bot on one of your accounts",
       ownership="caller", owned_body=("account_id",)),
    _r("GET", "/bots", "strategy", "viewer", "Your bots", ownership="caller"),
    _r("GET", "/bots/{bot_id}", "strategy", "viewer", "A bot's state",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/pause", "strategy", "trader", "Pause a bot",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/resume", "strategy", "trader", "Resume a paused bot",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/stop", "strategy", "trader", "Stop a bot",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/start", "strategy", "trader", "Start a stopped bot again",
       ownership="service", owned="bot_id"),
    _r("GET", "/bots/{bot_id}/runs", "strategy", "viewer", "A bot's runs",
       ownership="service", owned="bot_id"),
    _r("GET", "/bots/{bot_id}/orders", "strategy", "viewer", "The orders a bot asked for",
       ownership="service", owned="bot_id"),
    _r("GET", "/bots/{bot_id}/approvals", "strategy", "viewer",
       "An approval-mode bot's orders waiting for (or given) your decision",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/approvals/{approval_id}/approve", "strategy", "trader",
       "Approve a pending order of your bot (it goes to risk), once",
       ownership="service", owned="bot_id"),
    _r("POST", "/bots/{bot_id}/approvals/{approval_id}/reject", "strategy", "trader",
       "Reject a pending order of your bot", ownership="service", owned="bot_id"),
    # A signed one-time link from a notification: no credential, the signature (checked by
    # strategy) is the authority; limited per IP like every public route. A GET only shows a
    # confirm button (link previews fetch it); the POST decides.
    _r("GET", "/approvals/{approval_id}/approve", "strategy", "public",
       "A signed approval link's page (decides nothing)"),
    _r("POST", "/approvals/{approval_id}/approve", "strategy", "public",
       "Approve through a signed link, once"),
    _r("GET", "/approvals/{approval_id}/reject", "strategy", "public",
       "A signed rejection link's page (decides nothing)"),
    _r("POST", "/approvals/{approval_id}/reject", "strategy", "public",
       "Reject through a signed link, once"),
    _r("POST", "/backtests", "strategy", "trader", "Submit a backtest", ownership="caller"),
    _r("GET", "/backtests", "strategy", "viewer", "Your backtests", ownership="caller"),
    _r("POST", "/backtests/grids", "strategy", "trader", "Submit a grid search",
       ownership="caller"),
    _r("GET", "/backtests/grids/{grid_id}", "strategy", "viewer", "A grid's progress",
       ownership="service", owned="grid_id"),
    _r("GET", "/backtests/{backtest_id}", "strategy", "viewer", "A backtest",
       ownership="service", owned="backtest_id"),
    _r("GET", "/backtests/{backtest_id}/trades", "strategy", "viewer", "A backtest's trades",
       ownership="service", owned="backtest_id"),
    _r("GET", "/backtests/{backtest_id}/equity", "strategy", "viewer",
       "A backtest's equity curve", ownership="service", owned="backtest_id"),
    _r("POST", "/optimizations", "strategy", "trader",
       "Submit an optimisation (Optuna, validated walk-forward)", ownership="caller"),
    _r("GET", "/optimizations/{optimization_id}", "strategy", "viewer",
       "An optimisation's progress and folds", ownership="service", owned="optimization_id"),
    # execution: accounts, PnL, fills, orders
    _r("POST", "/accounts", "execution", "trader", "Open a paper (or exchange) account",
       ownership="caller"),
    _r("GET", "/accounts", "execution", "viewer", "Your accounts", ownership="caller"),
    _r("GET", "/accounts/{account_id}", "execution", "viewer", "One of your accounts",
       ownership="service", owned="account_id"),
    _r("DELETE", "/accounts/{account_id}", "execution", "trader",
       "Delete an account without open orders", ownership="service", owned="account_id"),
    _r("GET", "/accounts/{account_id}/pnl", "execution", "viewer",
       "Positions at average cost, realised and unrealised PnL",
       ownership="service", owned="account_id"),
    _r("GET", "/accounts/{account_id}/equity", "execution", "viewer", "Sampled equity",
       ownership="service", owned="account_id"),
    _r("GET", "/accounts/{account_id}/fills", "execution", "viewer", "The account's fills",
       ownership="service", owned="account_id"),
    _r("POST", "/accounts/{account_id}/cancel-all", "execution", "trader",
       "Cancel every open order of the account", ownership="service", owned="account_id"),
    _r("POST", "/accounts/{account_id}/test", "execution", "trader",
       "Test an exchange account's connectivity", ownership="service", owned="account_id"),
    _r("POST", "/accounts/{account_id}/reconcile", "execution", "trader",
       "Reconcile an exchange account now", ownership="service", owned="account_id"),
    _r("GET", "/accounts/{account_id}/discrepancies", "execution", "viewer",
       "What reconciliation found", ownership="service", owned="account_id"),
    _r("POST", "/orders", "risk", "trader",
       "Submit a manual order on one of your accounts (202: risk decides, execution places; "
       "its client_order_id again: 200 with that order, or 409 for another body)",
       ownership="caller", owned_body=("account_id",), local="submit_order"),
    _r("GET", "/orders", "execution", "viewer", "Your orders", ownership="caller"),
    _r("GET", "/orders/{client_order_id}", "execution", "viewer", "One order and its history",
       ownership="service", owned="client_order_id"),
    _r("POST", "/orders/{client_order_id}/cancel", "execution", "trader", "Cancel an open order",
       ownership="service", owned="client_order_id"),
    _r("POST", "/keystore/rewrap", "execution", "admin", "Re-wrap sealed exchange keys"),
    # risk: per account (owner checked through execution), kill switches, instrument rules
    _r("GET", "/accounts/{account_id}/risk", "risk", "viewer",
       "An account as risk sees it: state, limits, exposure",
       ownership="account", owned="account_id", upstream="/accounts/{account_id}"),
    _r("PUT", "/accounts/{account_id}/limits", "risk", "trader", "Set the account's limits",
       ownership="account", owned="account_id"),
    _r("PUT", "/accounts/{account_id}/instrument-limits", "risk", "trader",
       "Set the account's limits for one instrument", ownership="account", owned="account_id"),
    _r("POST", "/accounts/{account_id}/kill-switch", "risk", "trader",
       "Engage or release the account's kill switch", ownership="account", owned="account_id"),
    _r("POST", "/accounts/{account_id}/state", "risk", "admin",
       "Set an account's trading state"),
    _r("PUT", "/accounts/{account_id}/buying-power", "risk", "admin",
       "Override risk's copy of an account's buying power"),
    _r("GET", "/kill-switch", "risk", "viewer", "The platform-wide kill switch"),
    _r("POST", "/kill-switch", "risk", "admin", "Engage or release the platform-wide kill switch"),
    _r("GET", "/instruments/rules", "risk", "viewer", "An instrument's rules in force"),
    _r("PUT", "/instruments/rules", "risk", "admin", "Override an instrument's rules"),
    _r("DELETE", "/instruments/rules", "risk", "admin", "Delete an instrument's override"),
    _r("POST", "/instruments/rules/sync", "risk", "admin", "Load the venues' market info now"),
    # audit (admin)
    _r("GET", "/audit", "audit", "admin", "Search the audit log"),
    _r("GET", "/audit/verify", "audit", "admin", "Verify the audit log's hash chain"),
    _r("POST", "/audit/checkpoints", "audit", "admin", "Checkpoint the audit chain's head now"),
    _r("POST", "/audit/keys/rotate", "audit", "admin", "Rotate the audit chain's key"),
    # notify: the caller's own channels (the service keeps each to its owner)
    _r("POST", "/notify/channels", "notify", "trader",
       "Add a webhook channel for your accounts' events (its signing secret shown once)",
       ownership="caller"),
    _r("GET", "/notify/channels", "notify", "viewer", "Your channels", ownership="caller"),
    _r("DELETE", "/notify/channels/{channel_id}", "notify", "trader",
       "Delete one of your channels", ownership="service", owned="channel_id"),
    _r("POST", "/notify/channels/{channel_id}/disable", "notify", "trader",
       "Disable one of your channels (its pending deliveries held)", ownership="service",
       owned="channel_id"),
    _r("POST", "/notify/channels/{channel_id}/enable", "notify", "trader",
       "Enable one of your channels again", ownership="service", owned="channel_id"),
    _r("GET", "/notify/channels/{channel_id}/deliveries", "notify", "viewer",
       "Your channel's deliveries, newest first (status=dead: its dead letters)",
       ownership="service", owned="channel_id"),
    _r("POST", "/notify/channels/{channel_id}/deliveries/{event_id}/retry", "notify", "trader",
       "Send a dead delivery of your channel again", ownership="service", owned="channel_id"),
)
# fmt: on


class RouteIndex:
    """The table's routes by method, each path a regular expression (`{name}` is one path
    segment): the gateway's one catch-all route looks a request's route up here (api/routes.py)."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._by_method: dict[str, list[tuple[re.Pattern[str], Route]]] = {}
        for route in routes:
            pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
            self._by_method.setdefault(route.method, []).append((re.compile(f"^{pattern}$"), route))

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of `method path` (path below /api/v1) and its parameters, or None."""
        for pattern, route in self._by_method.get(method, ()):
            match = pattern.match(path)
            if match is not None:
                return route, match.groupdict()
        return None

    def methods(self, path: str) -> list[str]:
        """The methods the table has for `path` (for a 405's Allow header)."""
        return sorted(
            method
            for method, routes in self._by_method.items()
            if any(pattern.match(path) for pattern, _ in routes)
        )


INDEX = RouteIndex(ROUTES)


def role_allows(role: str, min_role: MinRole) -> bool:
    """True when `role` is at least `min_role` (admin > trader > viewer; public: anyone)."""
    if min_role == "public":
        return True
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[min_role]


# Headers never sent upstream as the client sent them: hop-by-hop ones (RFC 9110 7.6.1), the
# client's credentials (replaced by the verified access token), identity headers a service must
# never trust, and the ones the gateway sets itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host",
    "content-length",
    "accept-encoding",
    "authorization",
    "x-api-key",
    "cookie",
    "x-user-id",
    "x-user-role",
    "x-user",
    "x-forwarded-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "forwarded",
}
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "x-request-id",
    "server",
    "date",
    "set-cookie",
}


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    """Headers the `Connection` header names are hop-by-hop too."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named |= {part.strip().lower() for part in value.split(",") if part.strip()}
    return named


def forward_request_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's headers that go upstream (see DROPPED_REQUEST_HEADERS)."""
    pairs = list(headers)
    dropped = DROPPED_REQUEST_HEADERS | _connection_named(pairs)
    return [(n, v) for n, v in pairs if n.lower() not in dropped]


def forward_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's headers that go back to the client."""
    pairs = list(headers)
    dropped = DROPPED_RESPONSE_HEADERS | _connection_named(pairs)
    return [(n, v) for n, v in pairs if n.lower() not in dropped]


def capped_limit(value: str, cap: int) -> str | None:
    """The `limit` query value to send instead of `value` when it exceeds `cap`, else None.
    Larger pages are lowered to the cap, not refused: a client asking for "everything" gets the
    biggest page allowed and pages on. Non-numbers are left for the service to refuse (422)."""
    try:
        asked = int(value)
    except ValueError:
        return None
    return str(cap) if asked > cap else None


#: A re-sent manual order that risk has still not decided after this long publishes its intent
#: again: the first publish may have been lost after execution recorded the order (risk decides
#: a client order id once, so a second intent is harmless). Sooner, the first is in flight.
RESEND_INTENT_AFTER = timedelta(seconds=5)


def resend_intent(status: str, created_at: datetime, now: datetime) -> bool:
    """Whether a re-sent manual order, recorded at `created_at` and now in `status`, publishes
    its intent again (see RESEND_INTENT_AFTER)."""
    return status == "INITIALIZED" and now - created_at >= RESEND_INTENT_AFTER


def event_owner(event: Any) -> UUID | None:
    """The user an event on the gateway's topics belongs to (`user_id`), if it names one."""
    owner = getattr(event, "user_id", None)
    if isinstance(owner, UUID):
        return owner
    if isinstance(owner, str):
        try:
            return UUID(owner)
        except ValueError:
            return None
    return None


def owned_body_values(body: bytes, fields: tuple[str, ...]) -> list[str] | None:
    """The values of `fields` in a JSON object body, or None when the body is not a JSON object
    (the service answers that with 422; nothing is owned then). A body nested too deep for the
    parser is not one either: every app's input guard refuses it first (trademesh_http.inputs),
    and this stays safe without it."""
    try:
        document = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    return [str(document[f]) for f in fields if document.get(f) is not None]
