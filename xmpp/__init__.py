"""pygasi's conference leg: one phone call as one audio participant of a Jitsi room.

Public API (what the gateway binds a SIP call to)::

    from xmpp.config import ParticipantConfig, XmppServer
    from xmpp.participant import ConferenceParticipant
    from xmpp.media_transport import ConferenceMediaTransport, MediaTransportConfig

    leg = ConferenceParticipant(config, "room", "+1 555 0100", password=None,
                                media_factory=lambda: ConferenceMediaTransport(media_config))
    leg.on("session_started", lambda s: bind(s.media))   # set s.media.on_packet, send_audio
    await leg.join()            # typed errors: xmpp.errors.RoomPasswordError, LobbyEnabled, ...
    leg.set_status("Connected"); leg.set_muted(True); await leg.request_mute(False)
    leg.on("hangup_requested", lambda sender: ...)   # a Rayo hangup to our occupant JID
    await leg.leave("Call ended")

Dial-out (reference/jigasi.md §3)::

    from xmpp.brewery import BreweryConfig, BreweryMember, BreweryStats
    from xmpp.rayo import DialRefused, DialRequest

    brewery = BreweryMember(BreweryConfig(room, username, password, server), BreweryStats())
    brewery.on_dial = dial      # async (DialRequest, sender JID) -> "xmpp:<occupant JID>"
    brewery.on_hangup = hangup  # async (to JID, sender JID) -> None; raise DialRefused(...)
    await brewery.start()       # retries in the background; brewery.joined / brewery.problem
    brewery.publish(BreweryStats(conferences=1, participants=3))
    await brewery.stop()

Modules: `config` (the deployment), `connection` (slixmpp c2s shell: STARTTLS, SASL, XEP-0199,
reconnect), `participant` (the asyncio shell and its events), `brewery` (the dial-out account:
brewery MUC, stats presence, Rayo handlers), and the sans-IO pieces they drive: `rayo` (dial,
ref, hangup), `presence` (MUC presence, nick rule, join errors), `focus` (conference and mute
IQs), `caps` (disco#info and the XEP-0115 hash), `jingle` (Jingle <-> `transport_info` values),
`session` (the Jingle state machine), `stanzas` (one slixmpp class per element); `media_api` is
the shape of the media transport (`media_transport`, aiortc).

Deployments that accept JWT only over WebSocket are not supported yet: give the gateway an
account whose domain is in Prosody's ``token_verification_allowlist`` (and ``muc_lobby_whitelist``
to skip lobbies) and connect over TCP 5222 (reference/jingle.md §10).
"""
