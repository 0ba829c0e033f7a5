"""One page shape for every list route: `?limit=&cursor=` in, `{items, next_cursor}` out.

The cap is here, once (`MAX_LIMIT`), and shows in each route's OpenAPI parameters; a larger
`limit` is a 422 problem. Cursors are opaque to clients (base64url of the last row's sort key,
checked when read back): a client passes `next_cursor` as `cursor` until it is null
(decision 0115)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from trademesh_http.problems import ProblemError

MAX_LIMIT = 500
"""The most items a page holds, on every list route."""
DEFAULT_LIMIT = 100
"""A page's size when the client names none."""

T = TypeVar("T")
Row = TypeVar("Row")
KeyPart = str | int | datetime | UUID
KeyType = type[str] | type[int] | type[datetime] | type[UUID]


class Page(BaseModel, Generic[T]):
    """A page of a list, in the list's order. Subclass it per item (`class BotPage(Page[BotOut])`)
    so that the OpenAPI document names it."""

    items: list[T]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


@dataclass(frozen=True)
class PageRequest:
    """What a client asked for: at most `limit` items after the row its `cursor` names."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None

    @property
    def fetch(self) -> int:
        """How many rows to read: one more than a page, which says whether another page follows."""
        return self.limit + 1

    def after(self, *types: KeyType) -> tuple[Any, ...] | None:
        """The sort key the cursor names, each part read by its type (`datetime`, `UUID`, `int`,
        `str`), or None without a cursor; a 400 problem for a cursor this service did not make."""
        if self.cursor is None:
            return None
        return decode_cursor(self.cursor, *types)


def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="next_cursor of the previous page.")
    ] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


PageDep = Annotated[PageRequest, Depends(page_request)]
"""The query parameters of a list route: `request: PageDep`."""


def _part(value: KeyPart) -> str | int:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    return value


def encode_cursor(*key: KeyPart) -> str:
    """An opaque cursor naming the row whose sort key is `key`."""
    raw = json.dumps([_part(part) for part in key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read(kind: KeyType, value: Any) -> KeyPart:
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("not an integer")
        return value
    if not isinstance(value, str):
        raise ValueError("not a string")
    return UUID(value) if kind is UUID else value


def decode_cursor(cursor: str, *types: KeyType) -> tuple[Any, ...]:
    """The sort key a cursor names; a 400 problem for anything not made by encode_cursor with
    parts of these types."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError("wrong shape")
        return tuple(_read(kind, part) for kind, part in zip(types, parts, strict=True))
    except (ValueError, TypeError, binascii.Error, AttributeError, UnicodeDecodeError):
        raise ProblemError(
            400, "Invalid cursor", "Pass next_cursor as it was returned.", type="/problems/cursor"
        ) from None


def paginate(
    rows: Sequence[Row], request: PageRequest, key: Callable[[Row], tuple[KeyPart, ...]]
) -> tuple[list[Row], str | None]:
    """The page's rows (at most `limit` of the `fetch` read) and the next cursor, or None when
    these were the last."""
    items = list(rows[: request.limit])
    more = len(rows) > request.limit
    return items, encode_cursor(*key(items[-1])) if more and items else None
