"""Fixtures over the shared sample events (trademesh_testing.samples): one valid instance per
event type of the topic registry; a registry type without a sample fails test_roundtrip.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from trademesh_events.base import Event
from trademesh_testing.samples import SAMPLED_TYPES, build_sample, sample_fields

__all__ = ["SAMPLED_TYPES", "build_sample", "sample_fields"]


@pytest.fixture
def make_sample() -> Callable[..., Event]:
    """`make_sample(cls, **overrides)`: a valid event of `cls`."""
    return build_sample


@pytest.fixture
def sample_kwargs() -> Callable[..., dict[str, Any]]:
    """`sample_kwargs(cls, **overrides)`: the fields of a valid event of `cls`."""
    return sample_fields


@pytest.fixture
def sampled_types() -> frozenset[type[Event]]:
    return SAMPLED_TYPES
