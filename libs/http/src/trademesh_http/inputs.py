"""What a request may carry into a service: a bounded body, bounded JSON nesting, and no character
Postgres cannot store; and the database's refusal of such a character answered as the client's
error (422), never as a 500.

`InputGuard` is the plain ASGI middleware every app of `create_http_app` runs (inside the
request-id middleware, so its problems carry the request id):

- The path and the query string are checked before the app sees the request: a NUL (`%00`) or a
  lone UTF-16 surrogate is a 422 problem.
- The body is read when the app first asks for it, not before (the gateway's per-IP limit
  still comes before the body is read), in full and up to `max_body_bytes` (else a 413
  problem; a larger Content-Length is refused unread); it is then checked as JSON (arrays and
  objects nested at most `max_json_depth` deep; no `\\u0000`, no unpaired surrogate escape, no
  raw NUL byte, no UTF-8-encoded surrogate) and handed over in one piece: the app never sees a
  part of a body that is refused. Multipart and octet-stream bodies are only size-checked, as
  they may carry binary data.
- A route that nevertheless hands such text to the database meets Postgres's refusal (SQLSTATE
  22021 character_not_in_repertoire, 22P05 untranslatable_character) or asyncpg's
  UnicodeEncodeError of a surrogate: answered as a 422 problem too (a backstop, logged).

No problem ever echoes the refused value.
"""

from __future__ import annotations

import logging
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trademesh_http.problems import ProblemError, problem_response

log = logging.getLogger("trademesh.http")

#: Far above any body of the platform's APIs (the largest are bot and backtest requests of a
#: few kB), as the gateway's own limit.
MAX_BODY_BYTES = 1_048_576
#: The platform's deepest requests nest 3 levels (a backtest grid); JSON's own parser recurses
#: about a thousand levels, pydantic's about two hundred, and the code that walks a document
#: (validation, json.dumps into jsonb, an event) takes several frames a level: 32 leaves room
#: for any real document and a wide margin below every recursion limit.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class InputLimits:
    """The bounds `InputGuard` holds requests to."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH

    def __post_init__(self) -> None:
        if self.max_body_bytes < 0 or self.max_json_depth < 1:
            raise ValueError("max_body_bytes must be >= 0 and max_json_depth >= 1")


# ---- the checks: pure functions of bytes ---------------------------------------------------------

# A raw NUL byte, or a surrogate encoded as UTF-8 (ED A0..BF xx): json.loads decodes bytes with
# surrogatepass, so the latter would reach the app as a lone surrogate.
_RAW_REFUSED = re.compile(rb"\x00|\xed[\xa0-\xbf]")
# The escapes of a JSON text, from left to right: an escaped backslash and a valid surrogate pair
# are skipped whole (so `\\u0000` is a backslash and "u0000", not a NUL); group 1 is a refused
# escape: \u0000 or a surrogate half outside a pair.
_ESCAPES = re.compile(
    rb"\\(?:\\|u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})))"
)
# A JSON string, possessive so that it never backtracks; an unterminated one runs to the end
# (so every attempt matches, and the scan stays linear whatever the body).
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1 and -1
_REFUSED_TEXT = re.compile("[\x00\ud800-\udfff]")
_REFUSED_QUERY = re.compile(rb"%00|\x00")


def json_too_deep(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether `body`, read as JSON, nests arrays and objects more than `max_depth` deep.

    Brackets inside strings do not count. For a body that is not valid JSON the answer is an
    upper bound of how deep a parser gets before it stops. A body with no more than `max_depth`
    opening brackets at all (most bodies) costs two counts; any other a few linear scans.
    """
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    steps = array("b", _STRING.sub(b"", body).translate(_STEPS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0) > max_depth


def json_has_refused_characters(body: bytes) -> bool:
    """Whether `body` holds a character Postgres cannot store once the JSON is decoded: NUL, or
    a lone UTF-16 surrogate (as a `\\u` escape, or encoded as bytes); a raw NUL byte too."""
    if _RAW_REFUSED.search(body) is not None:
        return True
    if b"\\u" not in body:
        return False
    return any(match.group(1) for match in _ESCAPES.finditer(body))


def text_has_refused_characters(text: str) -> bool:
    """Whether decoded text (a request's path) holds NUL or a lone surrogate."""
    return _REFUSED_TEXT.search(text) is not None


def query_has_refused_characters(query: bytes) -> bool:
    """Whether a raw query string decodes to a NUL (`%00`). Starlette decodes it as UTF-8 with
    replacement, so an encoded surrogate becomes U+FFFD, never a surrogate."""
    return _REFUSED_QUERY.search(query) is not None


_CHARACTER_STATES = frozenset({"22021", "22P05"})


def refused_by_database(exc: BaseException) -> bool:
    """Whether `exc` is, or was caused by, the database refusing a character of the request:
    Postgres's SQLSTATE 22021 (character_not_in_repertoire: a NUL in text) or 22P05
    (untranslatable_character: \\u0000 in jsonb), or the UTF-8 encoding of a lone surrogate,
    which asyncpg raises (wrapped in its DataError) before sending. Duck-typed on `sqlstate`, so
    that this library needs no database driver. Another UnicodeEncodeError (non-Latin-1 text in a
    header, say) is the server's bug and stays a 500."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 32:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _CHARACTER_STATES:
            return True
        if isinstance(current, UnicodeEncodeError) and _encodes_a_surrogate(current):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return False


def _encodes_a_surrogate(error: UnicodeEncodeError) -> bool:
    refused = error.object[error.start : error.end] if isinstance(error.object, str) else ""
    return bool(refused) and all("\ud800" <= c <= "\udfff" for c in refused)


# ---- the problems ---------------------------------------------------------------------------------


# mypy sees the two bases type `detail` and `headers` apart (str | None against str, a dict
# against a Mapping); both hold what either expects.
class InputRefused(ProblemError, StarletteHTTPException):  # type: ignore[misc]
    """A problem raised from the body the app reads. A Starlette HTTPException too, so that
    FastAPI's body reading passes it on rather than making it a 400; answered as the problem it
    is (its ProblemError handler comes first)."""

    def __init__(self, status: int, title: str, detail: str, **extensions: Any) -> None:
        ProblemError.__init__(self, status, title, detail, **extensions)
        # ProblemError's super().__init__ ran Starlette's with the message for a status code.
        self.status_code = status


def too_large(max_bytes: int) -> InputRefused:
    """The gateway's 413 too (its own check, on the declared length, comes first there)."""
    return InputRefused(
        413,
        "Request too large",
        f"A request body may hold at most {max_bytes} bytes.",
        type="/problems/too-large",
        max_bytes=max_bytes,
    )


def too_deep(max_depth: int) -> InputRefused:
    return InputRefused(
        422,
        "JSON nested too deeply",
        f"Arrays and objects may nest at most {max_depth} deep in a request body.",
        type="/problems/too-deep",
        max_depth=max_depth,
    )


def unsupported_character(location: str) -> InputRefused:
    return InputRefused(
        422,
        "Unsupported character",
        f"The request's {location} holds a character that cannot be stored: NUL (U+0000) or "
        "an unpaired UTF-16 surrogate.",
        type="/problems/unsupported-character",
        location=location,
    )


# ---- the middleware -------------------------------------------------------------------------------

_CONTENT_TYPE = b"content-type"
_CONTENT_LENGTH = b"content-length"
_BINARY = (b"multipart/", b"application/octet-stream")


class InputGuard:
    """Bounded bodies, bounded JSON depth, no NUL or lone surrogate in a path, query or JSON
    body (see the module). A plain ASGI middleware, like the request-id one."""

    def __init__(self, app: ASGIApp, limits: InputLimits | None = None) -> None:
        self.app = app
        self.limits = limits or InputLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused: InputRefused | None = None
        if text_has_refused_characters(scope["path"]):
            refused = unsupported_character("path")
        elif query_has_refused_characters(scope.get("query_string", b"")):
            refused = unsupported_character("query")
        if refused is not None:
            await _answer(refused, scope, receive, send)
            return
        responded = False

        async def tracked(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        body = _Body(scope, receive, self.limits)
        try:
            await self.app(scope, body.receive, tracked)
        except Exception as exc:
            if responded:
                raise
            if isinstance(exc, InputRefused):
                refused = exc
            elif refused_by_database(exc):
                log.warning(
                    "the database refused a character of the request",
                    extra={"path": scope["path"], "error": type(exc).__name__},
                )
                refused = unsupported_character("input")  # wherever the route found it
            else:
                raise
            await _answer(refused, scope, receive, send)


class _Body:
    """The request's body, read whole and checked at the app's first `receive`; handed over as
    one message; later calls (a disconnect) go straight through."""

    def __init__(self, scope: Scope, receive: Receive, limits: InputLimits) -> None:
        self.scope = scope
        self.upstream = receive
        self.limits = limits
        self.done = False

    async def receive(self) -> Message:
        if self.done:
            return await self.upstream()
        self.done = True
        limit = self.limits.max_body_bytes
        content_type = b""
        for name, value in self.scope["headers"]:
            if name == _CONTENT_LENGTH:
                if value.isdigit() and int(value) > limit:
                    raise too_large(limit)
            elif name == _CONTENT_TYPE:
                content_type = value.lower()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.upstream()
            if message["type"] != "http.request":
                return message  # a disconnect: nothing to hand over
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if body and not content_type.lstrip().startswith(_BINARY):
            if json_has_refused_characters(body):
                raise unsupported_character("body")
            if json_too_deep(body, self.limits.max_json_depth):
                raise too_deep(self.limits.max_json_depth)
        return {"type": "http.request", "body": body, "more_body": False}


async def _answer(refused: InputRefused, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope)
    # The path's refused characters are not echoed, not even in `instance`.
    instance = _REFUSED_TEXT.sub("\ufffd", request.url.path)
    response = problem_response(
        request,
        refused.status,
        title=refused.title,
        detail=refused.detail,
        type=refused.type,
        **{**refused.extensions, "instance": instance},
    )
    await response(scope, receive, send)
