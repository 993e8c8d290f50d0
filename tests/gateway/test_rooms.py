"""Which room a call goes to: RoomResolver (jigasi.md §1.2, §1.3, and the fallbacks beyond)."""

from __future__ import annotations

import pytest

from gateway.config import InboundConfig, XmppConfig
from gateway.rooms import DEFAULT_MUC_PREFIXES, RoomNotFound, RoomResolver, RoomTarget
from sip.headers import Headers

MEET = XmppConfig(domain="meet.example.com", muc_domain="conference.meet.example.com")
DOCKER = XmppConfig(domain="meet.jitsi", muc_domain="muc.meet.jitsi")
NOT_FOUND = "no room: no X-Room-Name or Jitsi-Conference-Room header and no default room"


def resolver(xmpp: XmppConfig = MEET, **inbound: object) -> RoomResolver:
    return RoomResolver(InboundConfig(**inbound), xmpp)  # type: ignore[arg-type]


def headers(*items: tuple[str, str]) -> Headers:
    return Headers(items)


def room_header(value: str, name: str = "X-Room-Name") -> Headers:
    return Headers([(name, value)])


# -- the table of jigasi.md §1.3 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "jid", "domain", "muc", "tenant"),
    [
        (
            "room1234",
            "room1234@conference.meet.example.com",
            "meet.example.com",
            "conference.meet.example.com",
            None,
        ),
        (
            "room1234@conference.meet.example.com",
            "room1234@conference.meet.example.com",
            "meet.example.com",
            "conference.meet.example.com",
            None,
        ),
        (
            "room1234@conference.acme.meet.example.com",
            "room1234@conference.acme.meet.example.com",
            "meet.example.com",
            "conference.acme.meet.example.com",
            "acme",
        ),
        (
            "room1234@muc.meet.jitsi",
            "room1234@muc.meet.jitsi",
            "meet.jitsi",
            "muc.meet.jitsi",
            None,
        ),
    ],
)
def test_jigasi_room_jid_table(
    value: str, jid: str, domain: str, muc: str, tenant: str | None
) -> None:
    target = resolver().resolve(room_header(value))
    assert target == RoomTarget(jid, domain, muc, tenant, None, "header")
    assert target.name == "room1234"


def test_docker_muc_domain_for_a_bare_name() -> None:
    r = resolver(DOCKER)
    assert r.muc_prefix == "muc"
    assert r.muc_prefixes == ("muc", "conference")
    assert r.resolve(room_header("room1234")) == RoomTarget(
        "room1234@muc.meet.jitsi", "meet.jitsi", "muc.meet.jitsi", None, None, "header"
    )


def test_docker_tenant_subdomain() -> None:
    target = resolver(DOCKER).resolve(room_header("room1234@muc.acme.meet.jitsi"))
    assert (target.domain, target.tenant) == ("meet.jitsi", "acme")


def test_resolver_prefixes() -> None:
    r = resolver()
    assert r.muc_prefix == "conference"
    assert r.muc_prefixes == DEFAULT_MUC_PREFIXES == ("conference", "muc")
    custom = RoomResolver(
        InboundConfig(), XmppConfig(domain="example.org", muc_domain="rooms.example.org")
    )
    assert custom.muc_prefixes == ("rooms", "conference", "muc")


def test_muc_domain_outside_the_domain_defaults_the_prefix() -> None:
    r = RoomResolver(
        InboundConfig(), XmppConfig(domain="meet.example.com", muc_domain="chat.other.org")
    )
    assert r.muc_prefix == "conference"
    target = r.resolve(room_header("standup"))
    assert target.jid == "standup@chat.other.org"
    assert target.muc_domain == "chat.other.org"


def test_a_resource_is_dropped_from_a_full_jid() -> None:
    target = resolver().resolve(room_header("room1234@conference.meet.example.com/focus"))
    assert target.jid == "room1234@conference.meet.example.com"


def test_deeper_subdomain_is_no_tenant() -> None:
    target = resolver().resolve(room_header("r@conference.a.b.meet.example.com"))
    assert (target.domain, target.tenant) == ("meet.example.com", None)


def test_an_unrelated_domain_is_its_own_login_domain() -> None:
    target = resolver().resolve(room_header("r@conference.other.example.org"))
    assert target == RoomTarget(
        "r@conference.other.example.org",
        "other.example.org",
        "conference.other.example.org",
        None,
        None,
        "header",
    )


# -- meeting URLs (Jigasi refuses them) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "jid", "tenant"),
    [
        ("https://meet.example.com/room", "room@conference.meet.example.com", None),
        ("https://meet.example.com/acme/room", "room@conference.acme.meet.example.com", "acme"),
        ("http://meet.example.com/room", "room@conference.meet.example.com", None),
        ("HTTPS://Meet.Example.COM/StandUp", "standup@conference.meet.example.com", None),
        ("https://meet.example.com/room?lang=en#config", "room@conference.meet.example.com", None),
        ("https://meet.example.com:8443/room/", "room@conference.meet.example.com", None),
        ("https://meet.example.com/Acme/Room", "room@conference.acme.meet.example.com", "acme"),
    ],
)
def test_meeting_urls(url: str, jid: str, tenant: str | None) -> None:
    target = resolver().resolve(room_header(url))
    assert target.jid == jid
    assert target.domain == "meet.example.com"
    assert target.muc_domain == jid.split("@")[1]
    assert target.tenant == tenant
    assert target.source == "header"


def test_meeting_url_of_another_host() -> None:
    target = resolver().resolve(room_header("https://other.example.org/room"))
    assert target == RoomTarget(
        "room@conference.other.example.org",
        "other.example.org",
        "conference.other.example.org",
        None,
        None,
        "header",
    )


def test_meeting_url_of_another_host_with_a_tenant() -> None:
    target = resolver().resolve(room_header("https://other.example.org/acme/room"))
    assert target == RoomTarget(
        "room@conference.acme.other.example.org",
        "other.example.org",
        "conference.acme.other.example.org",
        "acme",
        None,
        "header",
    )


def test_meeting_url_percent_encoded() -> None:
    target = resolver().resolve(room_header("https://meet.example.com/caf%C3%A9"))
    assert target.jid == "café@conference.meet.example.com"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://meet.example.com/", "meeting URL without a room"),
        ("https://meet.example.com", "meeting URL without a room"),
        ("https://meet.example.com/my%20room", "room name 'my room' holds ' '"),
        ("https://meet.example.com/a%2Fb", "room name 'a/b' holds '/'"),
        ("https://meet.example.com/ac_me/room", "tenant 'ac_me' is not a domain label"),
        ("https:///room", "meeting URL host '' is not a domain name"),
    ],
)
def test_bad_meeting_urls(url: str, why: str) -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(room_header(url))
    assert caught.value.reason == f"no room: bad room header ({why})"


# -- header names and values (jigasi.md §1.2; §9 items 1-2) ----------------------------------------


@pytest.mark.parametrize(
    "name",
    ["X-Room-Name", "x-room-name", "X-ROOM-NAME", "Jitsi-Conference-Room", "jitsi-conference-room"],
)
def test_room_header_names_compare_case_insensitively(name: str) -> None:
    target = resolver().resolve(room_header("standup", name))
    assert target.jid == "standup@conference.meet.example.com"
    assert target.source == "header"


def test_x_room_name_wins_over_jitsi_conference_room() -> None:
    h = headers(("Jitsi-Conference-Room", "second"), ("X-Room-Name", "first"))
    assert resolver().resolve(h).name == "first"


def test_the_first_of_repeated_headers_is_used() -> None:
    h = headers(("X-Room-Name", "one"), ("X-Room-Name", "two"))
    assert resolver().resolve(h).name == "one"


def test_a_blank_room_header_counts_as_absent() -> None:
    h = headers(("X-Room-Name", "   "), ("Jitsi-Conference-Room", "backup"))
    assert resolver().resolve(h).name == "backup"
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(room_header("  "))
    assert caught.value.reason == NOT_FOUND


def test_the_value_is_trimmed_and_case_folded() -> None:
    target = resolver().resolve(room_header("  StandUp@Conference.Meet.Example.COM.  "))
    assert target.jid == "standup@conference.meet.example.com"
    assert target.domain == "meet.example.com"
    assert resolver().resolve(room_header("MyRoom")).jid == "myroom@conference.meet.example.com"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Room-Pass", "s3cret"),
        ("x-room-pass", "s3cret"),
        ("Jitsi-Conference-Room-Pass", "s3cret"),
    ],
)
def test_password_header(name: str, value: str) -> None:
    target = resolver().resolve(headers(("X-Room-Name", "standup"), (name, value)))
    assert target.password == "s3cret"


def test_no_password_header_is_none() -> None:
    assert resolver().resolve(room_header("standup")).password is None
    h = headers(("X-Room-Name", "standup"), ("X-Room-Pass", " "))
    assert resolver().resolve(h).password is None


def test_password_is_kept_verbatim_except_surrounding_space() -> None:
    h = headers(("X-Room-Name", "standup"), ("X-Room-Pass", " Pa ss/<@> "))
    assert resolver().resolve(h).password == "Pa ss/<@>"


def test_custom_header_names_given_as_a_string() -> None:
    r = resolver(room_header="X-Conf", password_header="X-Pin")
    target = r.resolve(headers(("x-conf", "board"), ("X-Pin", "1234")))
    assert (target.name, target.password) == ("board", "1234")
    with pytest.raises(RoomNotFound) as caught:
        r.resolve(room_header("standup"))  # X-Room-Name is not looked at any more
    assert caught.value.reason == "no room: no X-Conf header and no default room"


def test_tenant_header_for_a_bare_name() -> None:
    h = headers(("X-Room-Name", "standup"), ("X-Domain-Tenant", "Acme"))
    assert resolver().resolve(h) == RoomTarget(
        "standup@conference.acme.meet.example.com",
        "meet.example.com",
        "conference.acme.meet.example.com",
        "acme",
        None,
        "header",
    )
    h = headers(("X-Room-Name", "standup"), ("Jitsi-Conference-Domain-Tenant", "acme"))
    assert resolver().resolve(h).tenant == "acme"


def test_domain_base_header_for_a_bare_name() -> None:
    h = headers(("X-Room-Name", "standup"), ("X-Domain-Base", "Other.Example.org"))
    assert resolver().resolve(h) == RoomTarget(
        "standup@conference.other.example.org",
        "other.example.org",
        "conference.other.example.org",
        None,
        None,
        "header",
    )


def test_domain_base_and_tenant_headers_together() -> None:
    h = headers(
        ("X-Room-Name", "standup"),
        ("Jitsi-Conference-Domain-Base", "other.example.org"),
        ("X-Domain-Tenant", "acme"),
    )
    target = resolver().resolve(h)
    assert target.jid == "standup@conference.acme.other.example.org"
    assert (target.domain, target.tenant) == ("other.example.org", "acme")


def test_domain_base_splits_a_tenant_from_a_full_jid() -> None:
    h = headers(
        ("X-Room-Name", "r@conference.acme.other.example.org"),
        ("X-Domain-Base", "other.example.org"),
    )
    target = resolver().resolve(h)
    assert (target.domain, target.tenant) == ("other.example.org", "acme")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a/b", "room name 'a/b' holds '/'"),
        ("<sip:standup@meet.example.com>", "room name '<sip:standup' holds '<'"),
        ("stand up", "room name 'stand up' holds ' '"),
        ('say"hi', "room name 'say\"hi' holds '\"'"),
        ("@conference.meet.example.com", "empty room name"),
        ("room@", "room domain '' is not a domain name"),
        (
            "room@bad_domain.example.com",
            "room domain 'bad_domain.example.com' is not a domain name",
        ),
        ("x" * 1024, "room name too long"),
    ],
)
def test_bad_header_value_reported_when_nothing_else_matches(value: str, why: str) -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(room_header(value))
    assert caught.value.reason == f"no room: bad room header ({why})"
    assert str(caught.value) == caught.value.reason


@pytest.mark.parametrize("value", ["a/b", "<sip:standup@meet.example.com>", "x" * 1024])
def test_bad_header_value_falls_through_to_the_default_room(value: str) -> None:
    target = resolver(default_room="lobby").resolve(room_header(value))
    assert target == RoomTarget(
        "lobby@conference.meet.example.com",
        "meet.example.com",
        "conference.meet.example.com",
        None,
        None,
        "default",
    )


def test_bad_header_value_falls_through_to_the_number_map() -> None:
    r = resolver(rooms={"100": "sales"})
    assert r.resolve(room_header("a/b"), request_user="100").jid == (
        "sales@conference.meet.example.com"
    )


def test_bad_tenant_header_spoils_the_header_room() -> None:
    h = headers(("X-Room-Name", "standup"), ("X-Domain-Tenant", "ac_me"))
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(h)
    assert caught.value.reason == "no room: bad room header (tenant 'ac_me' is not a domain label)"


def test_bad_domain_base_header_is_reported() -> None:
    h = headers(("X-Room-Name", "standup"), ("X-Domain-Base", "not a domain"))
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(h)
    assert caught.value.reason == (
        "no room: bad room header (domain base 'not a domain' is not a domain name)"
    )


# -- [inbound.rooms]: the called number ------------------------------------------------------------


def test_number_map_exact_match() -> None:
    r = resolver(rooms={"+1 (555) 123-0000": "sales"})
    target = r.resolve(Headers(), request_user="+1 (555) 123-0000")
    assert target == RoomTarget(
        "sales@conference.meet.example.com",
        "meet.example.com",
        "conference.meet.example.com",
        None,
        None,
        "number",
    )


@pytest.mark.parametrize("dialled", ["15551230000", "+15551230000", "1-555-123-0000"])
def test_number_map_matches_by_digits_only(dialled: str) -> None:
    r = resolver(rooms={"+1 (555) 123-0000": "sales"})
    assert r.resolve(Headers(), request_user=dialled).name == "sales"


def test_number_map_digits_the_other_way_round() -> None:
    r = resolver(rooms={"15551230000": "sales"})
    assert r.resolve(Headers(), request_user="+1 (555) 123-0000").name == "sales"


def test_number_map_exact_match_wins_over_digits() -> None:
    r = resolver(rooms={"100": "first", "1-0-0": "second"})
    assert r.room_for_number("1-0-0") == "second"
    assert r.room_for_number("100") == "first"
    assert r.room_for_number("(100)") == "first"  # digits: the first entry with those digits


def test_number_map_non_numeric_key() -> None:
    r = resolver(rooms={"sales-line": "sales"})
    assert r.room_for_number("sales-line") == "sales"
    assert r.room_for_number("other-line") is None
    assert r.room_for_number(None) is None
    assert r.room_for_number("") is None


def test_number_map_falls_back_to_the_to_user() -> None:
    r = resolver(rooms={"15551230000": "sales"})
    target = r.resolve(Headers(), request_user="gateway", to_user="+1 555 123 0000")
    assert (target.name, target.source) == ("sales", "number")


def test_number_map_request_uri_wins_over_to_user() -> None:
    r = resolver(rooms={"100": "hundred", "200": "two-hundred"})
    assert r.resolve(Headers(), request_user="200", to_user="100").name == "two-hundred"


def test_room_header_wins_over_the_number_map() -> None:
    r = resolver(rooms={"100": "sales"})
    assert r.resolve(room_header("standup"), request_user="100").name == "standup"


def test_number_map_carries_the_password_and_takes_full_jids() -> None:
    r = resolver(rooms={"200": "Board@conference.acme.meet.example.com"})
    target = r.resolve(headers(("X-Room-Pass", "9999")), request_user="200")
    assert target == RoomTarget(
        "board@conference.acme.meet.example.com",
        "meet.example.com",
        "conference.acme.meet.example.com",
        "acme",
        "9999",
        "number",
    )


def test_bad_number_map_entry_is_reported() -> None:
    r = resolver(rooms={"100": "bad room"})
    with pytest.raises(RoomNotFound) as caught:
        r.resolve(Headers(), request_user="100")
    assert caught.value.reason == (
        "no room: bad [inbound.rooms] entry for 100 (room name 'bad room' holds ' ')"
    )


# -- the Request-URI user and the default room -----------------------------------------------------


def test_uri_fallback_on() -> None:
    r = resolver(uri_fallback=True)
    target = r.resolve(headers(("X-Room-Pass", "1")), request_user="StandUp", to_user="other")
    assert target == RoomTarget(
        "standup@conference.meet.example.com",
        "meet.example.com",
        "conference.meet.example.com",
        None,
        "1",
        "uri",
    )


def test_uri_fallback_off_by_default() -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(Headers(), request_user="standup")
    assert caught.value.reason == NOT_FOUND


def test_uri_fallback_uses_the_tenant_header() -> None:
    r = resolver(uri_fallback=True)
    target = r.resolve(headers(("X-Domain-Tenant", "acme")), request_user="standup")
    assert target.jid == "standup@conference.acme.meet.example.com"
    assert target.tenant == "acme"


def test_uri_fallback_comes_after_the_number_map() -> None:
    r = resolver(uri_fallback=True, rooms={"100": "sales"})
    assert r.resolve(Headers(), request_user="100").source == "number"
    assert r.resolve(Headers(), request_user="101").name == "101"


def test_uri_fallback_bad_user_goes_to_the_default_room() -> None:
    r = resolver(uri_fallback=True, default_room="lobby")
    assert r.resolve(Headers(), request_user="a/b").source == "default"
    r = resolver(uri_fallback=True)
    with pytest.raises(RoomNotFound) as caught:
        r.resolve(Headers(), request_user="a/b")
    assert caught.value.reason == (
        "no room: Request-URI user is no room (room name 'a/b' holds '/')"
    )


def test_uri_fallback_without_a_request_user() -> None:
    with pytest.raises(RoomNotFound):
        resolver(uri_fallback=True).resolve(Headers(), request_user=None, to_user="x")


def test_default_room() -> None:
    r = resolver(default_room="Lobby")
    target = r.resolve(headers(("Jitsi-Conference-Room-Pass", "42")), request_user="999")
    assert target == RoomTarget(
        "lobby@conference.meet.example.com",
        "meet.example.com",
        "conference.meet.example.com",
        None,
        "42",
        "default",
    )


def test_default_room_as_a_full_jid() -> None:
    target = resolver(default_room="lobby@muc.meet.jitsi").resolve(Headers())
    assert (target.jid, target.domain) == ("lobby@muc.meet.jitsi", "meet.jitsi")


def test_bad_default_room_is_reported() -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver(default_room="a b").resolve(Headers())
    assert caught.value.reason == "no room: bad default_room (room name 'a b' holds ' ')"


def test_every_problem_is_named() -> None:
    r = resolver(default_room="a b", rooms={"100": "c d"}, uri_fallback=True)
    with pytest.raises(RoomNotFound) as caught:
        r.resolve(room_header("e/f"), request_user="1/00")
    assert caught.value.reason == (
        "no room: bad room header (room name 'e/f' holds '/'); "
        "bad [inbound.rooms] entry for 1/00 (room name 'c d' holds ' '); "
        "Request-URI user is no room (room name '1/00' holds '/'); "
        "bad default_room (room name 'a b' holds ' ')"
    )


def test_room_not_found_names_the_missing_headers() -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver().resolve(Headers(), request_user="100", to_user="200")
    assert caught.value.reason == NOT_FOUND
    assert isinstance(caught.value, Exception)


def test_room_not_found_without_room_headers() -> None:
    with pytest.raises(RoomNotFound) as caught:
        resolver(room_header=[]).resolve(room_header("standup"))
    assert caught.value.reason == "no room: no room header and no default room"


# -- configuration errors and target() -------------------------------------------------------------


@pytest.mark.parametrize(
    "xmpp",
    [
        XmppConfig(domain="", muc_domain="conference.meet.example.com"),
        XmppConfig(domain="meet.example.com", muc_domain="not a domain"),
        XmppConfig(domain="-bad.example.com", muc_domain="conference.meet.example.com"),
    ],
)
def test_bad_xmpp_domains_are_configuration_errors(xmpp: XmppConfig) -> None:
    with pytest.raises(ValueError, match="is not a domain name"):
        RoomResolver(InboundConfig(), xmpp)


def test_target_raises_value_error() -> None:
    with pytest.raises(ValueError, match="holds '/'"):
        resolver().target("a/b")


def test_target_defaults() -> None:
    assert resolver().target("standup") == RoomTarget(
        "standup@conference.meet.example.com",
        "meet.example.com",
        "conference.meet.example.com",
        None,
        None,
        "header",
    )
