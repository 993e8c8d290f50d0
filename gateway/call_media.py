"""The SIP leg's media of one call and its binding to the room (mixer mode).

::

    phone --RTP--> CallPipeline (jitter buffer, decode, 48 kHz) --> PhoneGate --> RoomMixer
    phone <--RTP-- CallPipeline <-- the room's mix minus this phone <-------------- RoomMixer
    bridge <-Opus- ConferenceMediaTransport.send_audio <-- ConferenceUplink <------ RoomMixer

The RTP ports are reserved when the INVITE arrives (their numbers go into the SDP answer),
before the codec is known; the `media.pipeline.CallPipeline` built after the negotiation takes
them through a one-allocation allocator, so a codec change in a re-INVITE can rebuild the
pipeline on the same sockets. The phone enters the room's mixer when the call is answered.

The gate (`set_gated`) is how mute and hold reach the media: a gated phone is neither mixed
into the other calls' audio nor sent to the bridge (design: hold music never reaches the room,
jigasi.md §9 item 23; mute works in mixer mode, item 21), while its RTP is still read so that
the jitter buffer and the statistics stay current.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, cast

import numpy as np

from media.codecs import codec_info
from media.codecs.opus import OpusConfig
from media.frame import FRAME_SAMPLES
from media.jitterbuffer import FrameStatus, JitterFrame
from media.pipeline import ConferenceUplink, PipelineConfig
from media.ports import AllocatedPorts, PortAllocator
from media.rtp import RtpPacket
from media.rtp_session import Direction as RtpDirection
from media.rtp_session import RtpSessionConfig
from media.srtp import SrtpConfig
from media.translator_pipeline import TranslatorPipeline
from sip.offer_answer import MediaNegotiator, NegotiatedStream, OfferAnswerConfig
from xmpp.media_api import MediaTransport
from xmpp.transport_info import MediaSource

if TYPE_CHECKING:
    from gateway.conference import Conference, Conferences
    from media.pipeline import CallPipeline

log = logging.getLogger("pygasi.call.media")

# The id the uplink writes the RFC 6464 level under; the conference transport re-writes it at
# the id the bridge's offer gave (send_audio).
_LEVEL_ID = 1
OPUS_PT = 111


class _Reserved:
    """An allocator that hands out the call's reserved ports (a pipeline's ``allocate``) and
    keeps them when a pipeline releases them: they belong to the call until `CallMedia.close`."""

    def __init__(self, ports: AllocatedPorts) -> None:
        self.ports = ports

    def allocate(
        self, now: float, rtcp_mux: bool = False, host: str | None = None
    ) -> AllocatedPorts:
        return self.ports

    def release(self, ports: AllocatedPorts, now: float, close_sockets: bool = True) -> None:
        return


class PhoneGate:
    """The phone as the mixer sees it (`media.mixer.FrameSource`): the pipeline's frames, or
    silence while gated. The pipeline is pulled either way (its sockets are drained there)."""

    def __init__(self, pipeline: CallPipeline) -> None:
        self.pipeline = pipeline
        self.closed = False

    def pull(self, now: float) -> JitterFrame:
        frame = self.pipeline.pull(now)
        return _SILENT if self.closed else frame


_SILENT = JitterFrame(np.zeros(FRAME_SAMPLES, dtype=np.int16), FrameStatus.SILENCE, None, None)


class CallMedia:
    """One call's SIP-leg media: reserved ports, the SDP negotiator, the pipeline, the gate,
    and the binding to the room's mixer and the current conference session."""

    def __init__(
        self,
        allocator: PortAllocator,
        *,
        host: str,
        sdp_address: str,
        offer_config: OfferAnswerConfig,
        now: float,
        pipeline_config: PipelineConfig | None = None,
        translator: bool = False,
        uplink_opus: Callable[[int], OpusConfig] | None = None,
    ) -> None:
        self.allocator = allocator
        # Translator mode (design.md): Opus forwarded both ways without decoding for the mix;
        # used when the phone side negotiated Opus, else the call is mixed as usual.
        self.translator_mode = translator
        self.translator: TranslatorPipeline | None = None
        # RFC 3550 §11: an even/odd pair; with rtcp-mux the odd one simply stays unused.
        self.ports = allocator.allocate(now, rtcp_mux=False, host=host)
        self.negotiator = MediaNegotiator(
            sdp_address, self.ports.rtp_port, offer_config, local_rtcp_port=self.ports.rtcp_port
        )
        self.pipeline_config = pipeline_config or PipelineConfig()
        # The Opus settings for the phone's voice, by the phone codec's sample rate
        # (gateway.media_settings); None: the encoder's defaults.
        self.uplink_opus = uplink_opus
        self.stream: NegotiatedStream | None = None
        self.pipeline: CallPipeline | None = None
        self.gate: PhoneGate | None = None
        self.uplink: ConferenceUplink | None = None
        self.gated = False
        self.local_ssrc = 0
        self.conferences: Conferences | None = None
        self.conference: Conference | None = None
        self.room = ""
        self.leg_id: Hashable | None = None
        self.transport: MediaTransport | None = None
        self.on_dtmf: Callable[[str], None] | None = None
        self.closed = False
        self._lost_reported = 0

    # -- negotiation -----------------------------------------------------------------------------

    def negotiated(self, stream: NegotiatedStream, now: float) -> None:
        """The offer/answer gave this stream (the INVITE, the ACK of a late offer, or a
        re-INVITE): build the pipeline, or update the remote address and direction."""
        if self.closed:
            return
        previous, self.stream = self.stream, stream
        current = self.pipeline or self.translator
        if current is not None and previous is not None and _same_format(previous, stream):
            current.set_remote(stream.remote_address, stream.remote_port, stream.remote_rtcp_port)
            current.rtp.set_direction(RtpDirection(stream.direction.value))
            return
        if current is not None:
            log.info("codec changed to %s: new pipeline on the same ports", stream.codec.name)
            self._close_pipelines(now, "codec changed")
        if self.translator_mode and stream.codec.name == "opus":
            self.translator = self._build_translator(stream, now)
        else:
            self.pipeline = self._build(stream, now)
        self._attach()

    def _session_config(self, stream: NegotiatedStream) -> RtpSessionConfig:
        codec = stream.codec
        te = stream.telephone_event
        srtp = None
        if stream.srtp is not None:
            srtp = SrtpConfig(stream.srtp.suite, stream.srtp.local_key, stream.srtp.remote_key)
        return RtpSessionConfig(
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            ptime_ms=stream.ptime,
            extra_payload_types=frozenset({codec.recv_payload_type}) - {codec.payload_type},
            telephone_event_pt=te.payload_type if te is not None else None,
            telephone_event_clock_rate=te.clock_rate if te is not None else None,
            rtcp_mux=stream.rtcp_mux,
            srtp=srtp,
        )

    def _build_translator(self, stream: NegotiatedStream, now: float) -> TranslatorPipeline:
        translator = TranslatorPipeline(
            self._session_config(stream),
            cast(PortAllocator, _Reserved(self.ports)),
            now,
            self._send_up_raw,
            config=self.pipeline_config,
            host=self.ports.host,
        )
        translator.set_remote(stream.remote_address, stream.remote_port, stream.remote_rtcp_port)
        translator.rtp.set_direction(RtpDirection(stream.direction.value))
        translator.rtp.on_dtmf = self._dtmf
        translator.gated = self.gated
        return translator

    def _close_pipelines(self, now: float, reason: str | None) -> None:
        self._detach()
        pipeline, self.pipeline = self.pipeline, None
        translator, self.translator = self.translator, None
        for each in (pipeline, translator):
            if each is None:
                continue
            try:
                each.close(now, reason)
            except Exception:  # closing must finish
                log.exception("closing the pipeline")

    def _build(self, stream: NegotiatedStream, now: float) -> CallPipeline:
        from media.pipeline import CallPipeline

        codec = stream.codec
        session = self._session_config(stream)
        opus = None
        if self.uplink_opus is not None:
            opus = self.uplink_opus(codec_info(codec.name).sample_rate)
        self.uplink = ConferenceUplink(
            self.local_ssrc,
            self._send_up,
            payload_type=OPUS_PT,
            audio_level_id=_LEVEL_ID,
            opus=opus,
        )
        self.uplink.muted = self.gated
        pipeline = CallPipeline(
            session,
            cast(PortAllocator, _Reserved(self.ports)),
            now,
            codec=codec.name,
            uplink=self.uplink,
            config=self.pipeline_config,
            host=self.ports.host,
        )
        pipeline.set_remote(stream.remote_address, stream.remote_port, stream.remote_rtcp_port)
        pipeline.rtp.set_direction(RtpDirection(stream.direction.value))
        pipeline.rtp.on_dtmf = self._dtmf
        self.gate = PhoneGate(pipeline)
        self.gate.closed = self.gated
        return pipeline

    @property
    def held(self) -> bool:
        """The phone put us on hold: it offered sendonly or inactive (RFC 3264 §8.4), so we
        answered recvonly or inactive and must not send."""
        return self.stream is not None and not self.stream.direction.sends

    @property
    def telephone_events(self) -> bool:
        return self.stream is not None and self.stream.telephone_event is not None

    # -- the room --------------------------------------------------------------------------------

    def attach(
        self, conferences: Conferences, room: str, leg_id: Hashable, local_ssrc: int
    ) -> None:
        """The call is answered: the phone joins the room's mixer, or in translator mode the
        clock (``local_ssrc``: the SSRC our conference leg sends the phone's audio on)."""
        if self.closed or self.leg_id is not None:
            return
        self.conferences = conferences
        self.room = room
        self.leg_id = leg_id
        self._set_ssrc(local_ssrc)
        self._attach()

    def _attach(self) -> None:
        conferences, leg_id = self.conferences, self.leg_id
        if conferences is None or leg_id is None:
            return  # not answered yet
        if self.translator is not None:
            # No mixing: the translator is ticked by the clock on its own.
            conferences.clock.add(self.translator)
            return
        if self.pipeline is None or self.gate is None:
            return  # a late offer: the pipeline comes with the answer in the ACK
        if self.conference is None:
            self.conference = conferences.get(self.room)
            self.conference.join(leg_id)
        # The uplink's SSRC is marked as ours in the mixer (its bridge copies are ignored).
        leg = self.pipeline.attach(self.conference.mixer, leg_id)
        leg.phone = self.gate

    def _detach(self) -> None:
        if self.pipeline is not None:
            self.pipeline.detach()
        if self.translator is not None and self.conferences is not None:
            self.conferences.clock.remove(self.translator)

    def bind(self, transport: MediaTransport, local_ssrc: int, sources: list[MediaSource]) -> None:
        """A conference session started: its transport takes the phone's Opus, and the room's
        mixer takes its remote sources' packets."""
        self.transport = transport
        self._set_ssrc(local_ssrc)
        translator = self.translator
        if translator is not None:
            forward = translator.forward

            def to_phone(source: MediaSource, packet: RtpPacket, arrival: float) -> None:
                forward(source.owner or source.ssrc, packet, arrival)

            transport.on_packet = to_phone
            return
        conference, leg_id = self.conference, self.leg_id
        if conference is not None and leg_id is not None:
            conference.add_sources(leg_id, sources)
            transport.on_packet = conference.receiver(
                leg_id, lambda: getattr(transport, "audio_level_id", None)
            )
            transport.wants = conference.wanted(leg_id)

    def unbind(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.on_packet = None
            transport.wants = None
        if self.conference is not None and self.leg_id is not None:
            self.conference.forget_sources(self.leg_id)

    def sources_added(self, sources: tuple[MediaSource, ...]) -> None:
        if self.transport is not None and self.conference is not None:
            self.conference.add_sources(self.leg_id, sources)

    def sources_removed(self, sources: tuple[MediaSource, ...]) -> None:
        if self.translator is not None:
            for source in sources:
                self.translator.remove_talker(source.owner or source.ssrc)
        if self.conference is not None:
            self.conference.remove_sources(self.leg_id, [s.ssrc for s in sources])

    def _set_ssrc(self, ssrc: int) -> None:
        """Our SSRC towards the bridge (a re-join may pick a new one): its copies coming back
        are ours, never mixed."""
        if ssrc == self.local_ssrc:
            return
        old, self.local_ssrc = self.local_ssrc, ssrc
        if self.uplink is not None:
            self.uplink.ssrc = ssrc
        if self.conference is not None:
            mixer = self.conference.mixer
            if old:
                mixer.unmark_own_ssrc(old)
            if self.pipeline is not None and self.pipeline.mixer is mixer:
                mixer.mark_own_ssrc(ssrc, self.leg_id)

    def _send_up_raw(
        self, payload: bytes, timestamp: int, marker: bool, level: int | None, voice: bool
    ) -> None:
        """Translator mode: the phone's own Opus to the conference."""
        if self.transport is not None:
            self.transport.send_audio(payload, timestamp, marker=marker, level=level, voice=voice)

    def _send_up(self, packet: RtpPacket) -> None:
        transport = self.transport
        if transport is None:
            return
        level: int | None = None
        voice = False
        value = packet.extensions.get(_LEVEL_ID) if packet.extensions else None
        if value:
            level, voice = value[0] & 0x7F, bool(value[0] & 0x80)
        transport.send_audio(
            packet.payload, packet.timestamp, marker=packet.marker, level=level, voice=voice
        )

    # -- mute, hold, DTMF ------------------------------------------------------------------------

    def set_gated(self, closed: bool) -> None:
        self.gated = closed
        if self.gate is not None:
            self.gate.closed = closed
        if self.uplink is not None:
            self.uplink.muted = closed
        if self.translator is not None:
            self.translator.gated = closed

    def send_dtmf(self, digit: str) -> bool:
        """RFC 4733 towards the phone when telephone-event was negotiated; False otherwise
        (the caller then sends INFO)."""
        current = self.pipeline or self.translator
        if current is None or not self.telephone_events:
            return False
        try:
            current.rtp.send_dtmf(digit)
        except ValueError:
            return False
        return True

    def _dtmf(self, digit: object) -> None:
        if self.on_dtmf is not None:
            self.on_dtmf(str(getattr(digit, "digit", digit)))

    # -- statistics ------------------------------------------------------------------------------

    def rtp_report(self) -> tuple[int, float] | None:
        """(packets lost since the last report, current jitter in ms) of the phone's stream."""
        current = self.pipeline or self.translator
        if current is None:
            return None
        stats = current.rtp.receiver_stats
        if stats is None:
            return None
        lost = stats.cumulative_lost
        delta, self._lost_reported = lost - self._lost_reported, lost
        return delta, stats.jitter_ms

    @property
    def last_received(self) -> float | None:
        current = self.pipeline or self.translator
        return None if current is None else current.rtp.counters.last_received

    # -- the end ---------------------------------------------------------------------------------

    def close(self, now: float, reason: str | None = None) -> None:
        """Leave the room's mixer, send RTCP BYE, release the ports (idempotent)."""
        if self.closed:
            return
        self.closed = True
        self.unbind()
        self._close_pipelines(now, reason)
        if self.conferences is not None and self.conference is not None:
            self.conferences.release(self.conference, self.leg_id)
        self.conference = None
        self.allocator.release(self.ports, now)


def _same_format(a: NegotiatedStream, b: NegotiatedStream) -> bool:
    return (
        a.codec == b.codec
        and a.telephone_event == b.telephone_event
        and a.rtcp_mux == b.rtcp_mux
        and a.srtp == b.srtp
    )


__all__ = ["CallMedia", "PhoneGate"]
