"""Secrets out of sight: the redactor masks secrets and request signatures, and ccxt's logger
masks them before any record exists."""

from __future__ import annotations

import logging

import pytest
from pydantic import SecretStr
from trademesh_exchange.redaction import CCXT_LOGGER, RedactingLogger, Redactor

pytestmark = pytest.mark.unit

API_KEY = "unit-api-key-0a1b2c3d4e5f"
SECRET = "unit-secret-9z8y7x6w5v4u"


def test_the_redactor_masks_secrets_and_keeps_them_out_of_its_repr() -> None:
    redact = Redactor([SecretStr(API_KEY), SecretStr(SECRET), None, SecretStr("")])
    assert API_KEY not in repr(redact) and SECRET not in repr(redact)
    assert repr(redact) == "Redactor(2 secrets)"  # the empty secret masks nothing
    assert redact(f"{SECRET}{API_KEY}") == "******"
    assert redact("nothing secret") == "nothing secret"


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    redact = Redactor([SecretStr("abc"), SecretStr("xxabcxx")])
    assert redact("key=xxabcxx") == "key=***"


def test_request_signatures_are_masked_in_queries_json_and_python_mappings() -> None:
    redact = Redactor([SecretStr("key-1"), SecretStr("secret-1")])
    text = redact('{"apiKey": "key-1", "signature": "deadbeef01", "timestamp": 1}')
    assert "deadbeef01" not in text and "key-1" not in text
    assert '"signature": "***"' in text
    assert redact("{'signature': 'deadbeef01'}") == "{'signature': '***'}"
    assert redact("a?x=1&signature=deadbeef01&y=2") == "a?x=1&signature=***&y=2"
    assert redact("a?SIGNATURE=deadbeef01") == "a?SIGNATURE=***"


def test_the_ccxt_logger_masks_secrets_before_a_record_exists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact = Redactor([SecretStr(API_KEY), SecretStr(SECRET)])
    logger = RedactingLogger(logging.getLogger(CCXT_LOGGER), redact)
    caplog.set_level(logging.DEBUG, logger=CCXT_LOGGER)
    logger.debug("%s %s, Request: %s %s", "GET", "u?signature=ff", {"X-MBX-APIKEY": API_KEY}, None)
    try:
        raise RuntimeError(f"failed with {SECRET}")
    except RuntimeError:
        logger.warning("oops %s", API_KEY, exc_info=True)
    logger.info("%s %s", "too few args")  # a broken format still logs, masked
    logger.error("as an exception", exc_info=ValueError(API_KEY))
    assert len(caplog.records) == 4
    assert "'X-MBX-APIKEY': '***'" in caplog.records[0].getMessage()
    assert "signature=***" in caplog.records[0].getMessage()
    assert "RuntimeError: failed with ***" in caplog.records[1].getMessage()
    assert caplog.records[1].exc_info is None  # no traceback text to leak through
    assert caplog.records[3].getMessage() == "as an exception (ValueError: ***)"
    assert API_KEY not in caplog.text and SECRET not in caplog.text


def test_the_ccxt_logger_writes_nothing_below_its_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = RedactingLogger(logging.getLogger(CCXT_LOGGER), Redactor([]))
    caplog.set_level(logging.INFO, logger=CCXT_LOGGER)
    logger.debug("a request")
    assert caplog.records == []
