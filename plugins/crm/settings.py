"""CRM settings: an admin's saved value (``crm.<name>`` in site settings) wins over the app config
(``CRM_<NAME>``, e.g. ``make_app(CRM_DUPLICATES="block")``), which wins over the defaults here."""
from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _l

DEFAULTS = {
    # Duplicate check on customers: a similar name or a contact's mobile is a warning or a refusal.
    "DUPLICATES": "warn",
    # Opportunity stages: (key, label, probability %); "won"/"lost" close an opportunity.
    "STAGES": (
        ("initial", _l("Initial contact"), 10),
        ("qualified", _l("Needs confirmed"), 30),
        ("proposal", _l("Proposal and quote"), 50),
        ("contract", _l("Contract approval"), 70),
        ("won", _l("Won"), 100),
        ("lost", _l("Lost"), 0),
    ),
    # Public pool: days without a follow-up after which a customer returns, per level; warning days before.
    "POOL_DAYS": {"A": 90, "B": 60, "C": 30},
    "POOL_WARN_DAYS": 7,
    # Claim limits per rep: claims per day, customers owned in total.
    "CLAIM_DAILY_LIMIT": 5,
    "CLAIM_TOTAL_LIMIT": 200,
    # Lead assignment: "round_robin" or "least_loaded"; open leads a rep may hold; rules by province/source.
    "ASSIGN_STRATEGY": "round_robin",
    "LEAD_CAPACITY": 50,
    # [{"province": "上海", "source": "", "users": ["sales1"]}, ...]; the first rule matching a lead decides.
    "ASSIGN_RULES": (),
    # Contract approval: the stage that starts it, the approval flow's key, and where a rejection sends it back.
    "CONTRACT_STAGE": "contract",
    "CONTRACT_FLOW": "contract",
    "REJECTED_STAGE": "proposal",
    # Who gets the invoice request (开票申请) of a confirmed order: everyone with this role...
    "INVOICE_ROLE": "finance",
    # ...or, when not empty, these usernames (a finance group).
    "INVOICE_USERS": (),
    # Service tickets: hours from creation to the SLA due time, per priority.
    "SLA_HOURS": {"urgent": 4, "high": 8, "normal": 24, "low": 72},
    # Public lead form: seconds a human needs at least, hours a form stays valid, submissions per IP.
    "LEAD_FORM_MIN_SECONDS": 3,
    "LEAD_FORM_MAX_HOURS": 24,
    "LEAD_FORM_RATE": "5 per hour",
}


def get(name: str):
    from core.site_settings import get_setting

    stored = get_setting(f"crm.{name.lower()}")
    if stored is not None:
        return stored
    return current_app.config["YITI"].get(f"CRM_{name}", DEFAULTS[name])


def stages() -> list[tuple[str, object, int]]:
    return [tuple(s) for s in get("STAGES")]


def stage_choices() -> list[tuple[str, object]]:
    """``[(key, label)]`` of the stages, for forms, lists and imports (``metadata["choices"]``)."""
    return [(key, label) for key, label, _probability in stages()]


def stage_keys() -> list[str]:
    return [s[0] for s in stages()]


def probability(stage: str) -> int:
    return next((p for key, _label, p in stages() if key == stage), 0)
