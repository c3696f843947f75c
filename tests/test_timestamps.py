"""Run timestamps: the text every row and answer carries, and what it reads back as."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from orchestrator.models import TIMESTAMP_FORMAT, epoch, now


def test_now_is_the_timestamp_format_in_utc_at_a_fixed_width() -> None:
    before = time.time()
    stamp = now()
    after = time.time()
    parsed = datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    assert parsed.strftime(TIMESTAMP_FORMAT) == stamp
    assert len(stamp) == len("2026-12-06T20:30:00.000001Z") and stamp.endswith("Z")
    seconds = epoch(stamp)
    assert seconds is not None and before - 1e-6 <= seconds <= after + 1e-6


def test_text_order_is_time_order() -> None:
    stamps = [now() for _ in range(200)]
    assert stamps == sorted(stamps)
