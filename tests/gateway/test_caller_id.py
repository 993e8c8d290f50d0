"""The caller's display name in the meeting (jigasi.md §1.10) and caller-ID masking."""

from __future__ import annotations

import pytest

from gateway.caller_id import NO_NUMBER, caller_display_name, number_display_name
from sip.headers import NameAddr, parse_name_addr


def from_(text: str) -> NameAddr:
    return parse_name_addr(text)


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ('"Alice Smith" <sip:+15551234567@trunk.example.com>;tag=1', "Alice Smith"),
        ("<sip:+15551234567@trunk.example.com>;tag=1", "+15551234567"),
        ("<sip:%2B4930123@trunk.example.com>", "+4930123"),  # %-escapes undone
        ("<sip:trunk.example.com>", "trunk.example.com"),  # no user part: the URI
    ],
)
def test_jigasi_rule(header: str, shown: str) -> None:
    assert caller_display_name(from_(header)) == shown


@pytest.mark.parametrize(
    ("header", "keep", "shown"),
    [
        # The name goes too: only the number's last digits are shown.
        ('"Alice Smith" <sip:+15551234567@trunk.example.com>', 4, "*******4567"),
        ("<sip:0301234@pbx>", 2, "*****34"),
        ("<sip:12@pbx>", 4, "12"),  # shorter than what is kept: nothing to hide
        ("<sip:12345@pbx>", 0, "*****"),
        ('"+49 30 1234" <sip:anonymous@pbx>', 4, "****1234"),  # digits from the name
        ('"Alice" <sip:alice@pbx>', 4, NO_NUMBER),
    ],
)
def test_masking(header: str, keep: int, shown: str) -> None:
    assert caller_display_name(from_(header), mask=True, keep_digits=keep) == shown


def test_dialled_numbers() -> None:
    assert number_display_name("+1 (555) 010-9999") == "+1 (555) 010-9999"
    assert number_display_name("+1 (555) 010-9999", mask=True) == "*******9999"
    assert number_display_name("sip:conference@pbx", mask=True) == NO_NUMBER
