"""Shared helpers: byte flipping for tamper tests, and a leak check over logs, output and errors."""

from __future__ import annotations

import base64
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator

import pytest
from trademesh_keystore import MasterKey

Flip = Callable[[bytes, int], bytes]


@pytest.fixture
def flip() -> Flip:
    """``flip(data, i)``: ``data`` with the bits of byte ``i`` inverted."""

    def flipped(data: bytes, index: int) -> bytes:
        return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]

    return flipped


def encodings(value: str | bytes) -> list[str]:
    """The forms a leaked value could take in text: itself, hex and base64 (with and without
    padding, standard and URL-safe)."""
    raw = value.encode() if isinstance(value, str) else value
    forms = [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    forms += [f.rstrip("=") for f in forms]
    if isinstance(value, str):
        forms.append(value)
    return forms


class RecordingMaster:
    """A MasterKey that passes everything to another one and remembers every data key it sees,
    so that a test can check they never leak either."""

    def __init__(self, inner: MasterKey) -> None:
        self.inner = inner
        self.data_keys: list[bytes] = []

    def current_key_id(self) -> str:
        return self.inner.current_key_id()

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[str, bytes]:
        self.data_keys.append(data_key)
        return self.inner.wrap(data_key, aad)

    def unwrap(self, key_id: str, wrapped: bytes, aad: bytes) -> bytes:
        data_key = self.inner.unwrap(key_id, wrapped, aad)
        self.data_keys.append(data_key)
        return data_key

    def rewrap(self, key_id: str, wrapped: bytes, aad: bytes) -> tuple[str, bytes]:
        return self.inner.rewrap(key_id, wrapped, aad)

    def __repr__(self) -> str:
        return f"RecordingMaster({self.inner!r})"


@pytest.fixture
def recording_master() -> type[RecordingMaster]:
    return RecordingMaster


class _CurrentStderrHandler(logging.Handler):
    """Writes records to whatever ``sys.stderr`` is at the time, i.e. capsys's during the test
    (a StreamHandler would keep the stream of the setup phase, which pytest closes)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class LeakCheck:
    """Everything a run could have let out: log records (caplog), text written to stdout and
    stderr (capsys, which also gets every record through a root handler at DEBUG), and the
    exceptions and objects the test hands in."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]):
        self.caplog = caplog
        self.capsys = capsys
        self.errors: list[BaseException] = []
        self.texts: list[str] = []

    def error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        logging.getLogger("test.keystore").exception("keystore call failed: %r", exc)

    def show(self, *objects: object) -> None:
        for obj in objects:
            self.texts += [repr(obj), str(obj)]
            logging.getLogger("test.keystore").debug("object %r / %s", obj, obj)

    def assert_absent(self, needles: Iterable[str | bytes]) -> str:
        """Fails if any encoding of any needle appears anywhere; returns the searched text."""
        out, err = self.capsys.readouterr()
        parts = [out, err, self.caplog.text, *self.texts]
        for record in self.caplog.records:
            parts += [record.getMessage(), repr(record.args), repr(record.msg)]
            if record.exc_info:
                parts.append("".join(traceback.format_exception(*record.exc_info)))
        for exc in self.errors:
            parts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
            parts += [repr(exc.args), repr(exc.__cause__), repr(exc.__context__)]
        haystack = "\n".join(parts)
        for needle in needles:
            for form in encodings(needle):
                assert form not in haystack, "a secret value leaked"
        return haystack


@pytest.fixture
def leak_check(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[LeakCheck]:
    """Root logging at DEBUG, captured by caplog and written to the captured stderr."""
    caplog.set_level(logging.DEBUG)
    handler = _CurrentStderrHandler(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield LeakCheck(caplog, capsys)
    finally:
        root.removeHandler(handler)
