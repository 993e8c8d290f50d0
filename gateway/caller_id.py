"""The name a phone caller shows in the meeting (jigasi.md §1.10), with optional masking.

Jigasi shows the From display name, else the From user part, else the URI, and has no way to
hide a caller's number (jigasi.md §9 item 22). With ``mask_caller_id`` only the last
``mask_keep_digits`` digits of the caller's number stay visible (``*******4567``): the
meeting can still tell two phones apart, and a public meeting does not learn who called.
"""

from __future__ import annotations

from sip.call import display_name_of
from sip.headers import NameAddr

MASK = "*"
NO_NUMBER = "Phone caller"  # shown when masking and the caller sent no digits at all


def caller_display_name(from_: NameAddr, *, mask: bool = False, keep_digits: int = 4) -> str:
    """The display name for the caller in ``from_`` (the INVITE's From header)."""
    name = display_name_of(from_)
    if not mask:
        return name
    # The number is in the URI's user part; a display name may be a number too ("+1 555…").
    user = from_.uri.user_unescaped or ""
    digits = "".join(ch for ch in user if ch.isdigit()) or "".join(
        ch for ch in name if ch.isdigit()
    )
    return _masked(digits, keep_digits)


def number_display_name(number: str, *, mask: bool = False, keep_digits: int = 4) -> str:
    """The display name for a dialled number (dial-out: the destination as given)."""
    if not mask:
        return number
    return _masked("".join(ch for ch in number if ch.isdigit()), keep_digits)


def _masked(digits: str, keep_digits: int) -> str:
    if not digits:
        return NO_NUMBER
    keep = max(0, min(keep_digits, len(digits)))
    return MASK * (len(digits) - keep) + digits[len(digits) - keep :]


__all__ = ["caller_display_name", "number_display_name"]
