"""Login throttling: failed attempts are counted per account and per client address.

Counters live in the rate-limit storage (Redis when ``REDIS_URL`` is set, so every app server
shares them). Only failures count; a success clears the account's counter.
"""
from __future__ import annotations

import math
import time

from flask import current_app
from limits import parse

from core.extensions import limiter


def _rules(username: str, address: str):
    settings = current_app.config["YITI"]
    return (
        (parse(settings["LOGIN_LIMIT_ACCOUNT"]), "login-account", username.strip().lower()),
        (parse(settings["LOGIN_LIMIT_IP"]), "login-ip", address),
    )


def retry_after(username: str, address: str) -> int:
    """Seconds until this account/address may try again; 0 when it may try now."""
    wait = 0
    for item, scope, key in _rules(username, address):
        if not limiter.limiter.test(item, scope, key):
            reset = limiter.limiter.get_window_stats(item, scope, key).reset_time
            wait = max(wait, math.ceil(reset - time.time()), 1)
    return wait


def record_failure(username: str, address: str) -> None:
    for item, scope, key in _rules(username, address):
        limiter.limiter.hit(item, scope, key)


def clear_account(username: str, address: str) -> None:
    item, scope, key = _rules(username, address)[0]
    limiter.limiter.clear(item, scope, key)
