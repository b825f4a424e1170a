"""The one place that reads the current time, so tests can move it (reminders, SLAs, time-outs)."""
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def set_now(value: datetime | None) -> None:
    """Freeze the clock at ``value`` (timezone-aware), or unfreeze it with ``None``. Tests only."""
    global _frozen
    if value is not None and value.tzinfo is None:
        raise ValueError("set_now needs a timezone-aware datetime")
    _frozen = value
