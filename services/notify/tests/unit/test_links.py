"""Approval links added to a pending approval's body when it is sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr
from trademesh_events import bots, orders
from trademesh_events.envelope import new_envelope
from trademesh_http.approval_links import verify
from trademesh_testing.samples import build_sample

from trademesh_notify.engine import notice_of
from trademesh_notify.links import ApprovalLinks

pytestmark = pytest.mark.unit

KEY = SecretStr("a unit test approval link key, long enough")
LINKS = ApprovalLinks("https://trade.example.org/", KEY)
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def test_a_pending_approvals_body_gets_a_signed_link_per_decision() -> None:
    asked = build_sample(bots.ApprovalRequested)
    assert isinstance(asked, bots.ApprovalRequested)
    notice = notice_of(asked, new_envelope(asked, "strategy", time=T0))
    assert notice is not None

    document = json.loads(LINKS.add_to(notice.event_type, notice.body))

    assert set(document["links"]) == {"approve", "reject"}
    for decision, link in document["links"].items():
        url = httpx.URL(link)
        assert url.path == f"/api/v1/approvals/{asked.approval_id}/{decision}"
        assert verify(KEY, asked.approval_id, decision, url.params["sig"])
        assert not verify(KEY, asked.approval_id, {"approve": "reject"}.get(decision, "approve"),
                          url.params["sig"])  # fmt: skip
    assert {k: v for k, v in document.items() if k != "links"} == json.loads(notice.body)


def test_any_other_body_is_sent_as_it_is() -> None:
    fill = build_sample(orders.OrderFilled)
    notice = notice_of(fill, new_envelope(fill, "execution", time=T0))
    assert notice is not None
    assert LINKS.add_to(notice.event_type, notice.body) is notice.body


def test_a_pending_approvals_body_without_its_id_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="without its id"):
        LINKS.add_to("trademesh.bot.approval_requested", json.dumps({"data": {}}).encode())
    with pytest.raises(ValueError, match="without its id"):
        LINKS.add_to("trademesh.bot.approval_requested", b"not json")
