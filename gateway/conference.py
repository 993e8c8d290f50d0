"""One room's shared media: the `RoomMixer` of all our calls in that room (design.md, "How
audio flows").

Every call of ours in a room is one leg of the room's mixer. The bridge sends each web
participant's stream to every one of our legs; the mixer takes each SSRC from one leg only
(its owner, with failover when that leg leaves or goes quiet) and decodes it once per room. Our
own phones are mixed locally and their copies coming back from the bridge are ignored, so two
phones in one room hear each other without the round trip and nobody hears themselves.

The sources a leg's Jingle session signalled are counted per leg: a source leaves the mixer
when no leg of ours still has it (one call's session ending must not silence a participant the
other calls still hear).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable

from media.clock import MediaClock
from media.mixer import MixerConfig, RoomMixer
from media.rtp import RtpPacket
from xmpp.transport_info import MediaSource

log = logging.getLogger("pygasi.conference")

JVB_OWNER = "jvb"


class Conference:
    """The media of one room."""

    def __init__(self, room: str, mixer: RoomMixer) -> None:
        self.room = room
        self.mixer = mixer
        self.legs: set[Hashable] = set()
        self._signalled: dict[Hashable, set[int]] = {}  # leg -> SSRCs its session signalled

    def __repr__(self) -> str:
        return f"<Conference {self.room} legs={len(self.legs)}>"

    def join(self, leg_id: Hashable) -> None:
        self.legs.add(leg_id)

    def leave(self, leg_id: Hashable) -> None:
        """The leg left the room's mixer (the pipeline detached itself)."""
        self.forget_sources(leg_id)
        self.legs.discard(leg_id)

    def add_sources(self, leg_id: Hashable, sources: Iterable[MediaSource]) -> None:
        signalled = self._signalled.setdefault(leg_id, set())
        for source in sources:
            # The bridge's feedback source (owner "jvb", jvb-a0) carries RTCP only
            # (jingle.md §3.1): no jitter buffer or decoder for it.
            if source.media != "audio" or source.owner == JVB_OWNER:
                continue
            signalled.add(source.ssrc)
            self.mixer.add_source(source.ssrc)  # None (ignored) for one of our own phones

    def remove_sources(self, leg_id: Hashable, ssrcs: Iterable[int]) -> None:
        signalled = self._signalled.get(leg_id)
        if signalled is None:
            return
        for ssrc in ssrcs:
            signalled.discard(ssrc)
            if not any(ssrc in other for other in self._signalled.values()):
                self.mixer.remove_source(ssrc)

    def forget_sources(self, leg_id: Hashable) -> None:
        """The leg's session ended: the sources only it knew go."""
        signalled = self._signalled.pop(leg_id, set())
        self.remove_sources_of(signalled)

    def remove_sources_of(self, ssrcs: Iterable[int]) -> None:
        for ssrc in ssrcs:
            if not any(ssrc in other for other in self._signalled.values()):
                self.mixer.remove_source(ssrc)

    def receiver(
        self, leg_id: Hashable, audio_level_id: Callable[[], int | None]
    ) -> Callable[[MediaSource, RtpPacket, float], None]:
        """The conference media transport's ``on_packet`` for one leg: its packets into the
        room's mixer (which drops the copies other legs already deliver)."""
        put = self.mixer.put_remote_packet

        def on_packet(source: MediaSource, packet: RtpPacket, arrival: float) -> None:
            put(leg_id, packet, arrival, audio_level_id())

        return on_packet

    def wanted(self, leg_id: Hashable) -> Callable[[int, float], bool]:
        """The conference media transport's ``wants`` for one leg: whether the room's mixer
        would use a packet of this SSRC from this leg, asked before decryption."""
        wants = self.mixer.wants

        def wanted(ssrc: int, arrival: float) -> bool:
            return wants(leg_id, ssrc, arrival)

        return wanted


class Conferences:
    """The rooms with media, each mixer ticked by the process's one `MediaClock`."""

    def __init__(self, clock: MediaClock, config: MixerConfig | None = None) -> None:
        self.clock = clock
        self.config = config or MixerConfig()
        self.rooms: dict[str, Conference] = {}

    def get(self, room: str) -> Conference:
        conference = self.rooms.get(room)
        if conference is None:
            conference = self.rooms[room] = Conference(room, RoomMixer(self.config))
            self.clock.add(conference.mixer)
            log.debug("room %s: mixer started", room)
        return conference

    def release(self, conference: Conference, leg_id: Hashable) -> None:
        """A call's media left the room; the last one stops the room's mixer."""
        conference.leave(leg_id)
        if not conference.legs and self.rooms.get(conference.room) is conference:
            del self.rooms[conference.room]
            self.clock.remove(conference.mixer)
            log.debug("room %s: mixer stopped", conference.room)

    def __len__(self) -> int:
        return len(self.rooms)


__all__ = ["Conference", "Conferences"]
