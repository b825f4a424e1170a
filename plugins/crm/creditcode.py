"""统一社会信用代码 (unified social credit code), GB 32100-2015: 18 characters, the last a check character.

Characters come from ``0-9`` and ``A-Z`` without I, O, S, V and Z (31 symbols). The check
character is ``C18 = 31 - (sum(Ci * Wi) mod 31)`` over the first 17, with weights ``Wi = 3^(i-1) mod 31``;
a result of 31 is written ``0``.
"""
from __future__ import annotations

from operator import mul

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_SYMBOLS = frozenset(ALPHABET)


def check_char(first17: str) -> str:
    """The 18th character for the first 17 (upper case); ``ValueError`` for a character outside the alphabet."""
    if len(first17) != 17:
        raise ValueError("need 17 characters")
    try:
        total = sum(map(mul, map(_VALUE.__getitem__, first17), WEIGHTS))
    except KeyError as exc:
        raise ValueError(f"invalid character {exc.args[0]!r}") from None
    return ALPHABET[(31 - total % 31) % 31]


def is_valid(code: str) -> bool:
    """True for an 18-character code (upper case) whose check character matches."""
    if not isinstance(code, str) or len(code) != 18 or not _SYMBOLS.issuperset(code):
        return False
    return check_char(code[:17]) == code[17]


def make(n: int, region: str = "310000") -> str:
    """A valid code for demo data and examples: 91 (enterprise) + region + a number derived from ``n``."""
    body = f"91{region}" + _base31(n, 9)
    return body + check_char(body)


def _base31(n: int, width: int) -> str:
    digits = []
    for _ in range(width):
        n, rest = divmod(n, 31)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))
