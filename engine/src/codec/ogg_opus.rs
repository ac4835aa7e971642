//! Ogg Opus (RFC 7845) fed as it arrives: pages are assembled from chunks split anywhere and
//! checked (capture pattern, CRC, page order) by the `ogg` crate's push reader; the `OpusHead`
//! and `OpusTags` headers come first; audio packets are decoded by [`OpusDecoder`] with the
//! header's pre-skip and output gain, and the last page's granule position trims the end.
//!
//! Input is taken a page at a time ([`OggOpusStream::push`] stops after each), and packets are
//! decoded one at a time ([`OggOpusStream::decode_next`]), so the caller bounds what is held:
//! one page of input, one packet of PCM.

use super::opus::{MAX_PACKET_SAMPLES, OpusDecoder, OpusError, decode_rate};
use ogg::reading::{BasePacketReader, OggReadError, PageParser};

/// Why an Ogg Opus stream was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OggOpusError {
    /// A page does not start with `OggS`.
    #[error("no Ogg capture pattern where a page starts")]
    CapturePattern,
    /// An Ogg stream structure version other than 0.
    #[error("unknown Ogg stream structure version")]
    Version,
    /// A page's CRC does not match its bytes.
    #[error("Ogg page CRC mismatch")]
    Crc,
    /// Pages out of order: a stream not starting with its first page, a continued packet
    /// without its beginning, a second first page.
    #[error("Ogg pages out of order")]
    PageOrder,
    /// Pages of two logical streams interleaved (only one audio stream is played at a time).
    #[error("multiplexed Ogg streams are not supported")]
    Multiplexed,
    /// The stream's first packet is not an `OpusHead` (another codec, or not Ogg Opus).
    #[error("not an Ogg Opus stream (no OpusHead)")]
    NotOpus,
    /// A malformed `OpusHead` or `OpusTags`.
    #[error("malformed Opus header")]
    BadHeader,
    /// A channel mapping other than family 0 (mono or stereo).
    #[error("only mono and stereo Opus streams (channel mapping family 0) are supported")]
    Unsupported,
    /// libopus rejected an audio packet.
    #[error("corrupt Opus packet")]
    BadPacket,
    /// The input ended inside a page or a packet.
    #[error("Ogg Opus stream truncated")]
    Truncated,
}

impl From<OggReadError> for OggOpusError {
    fn from(e: OggReadError) -> Self {
        match e {
            OggReadError::NoCapturePatternFound => Self::CapturePattern,
            OggReadError::InvalidStreamStructVer(_) => Self::Version,
            OggReadError::HashMismatch(..) => Self::Crc,
            OggReadError::InvalidData | OggReadError::ReadError(_) => Self::PageOrder,
        }
    }
}

impl From<OpusError> for OggOpusError {
    fn from(_: OpusError) -> Self {
        Self::BadPacket
    }
}

/// The fields of an `OpusHead` packet this player uses (RFC 7845, 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels (1 or 2 here).
    pub channels: u8,
    /// Samples at 48 kHz to drop from the start of the decoded audio.
    pub pre_skip: u16,
    /// The encoder's input rate, Hz (0: not given).
    pub input_rate: u32,
    /// Gain to apply, 1/256 dB.
    pub gain_q8: i16,
}

/// Parses an `OpusHead` packet.
pub fn parse_opus_head(packet: &[u8]) -> Result<OpusHead, OggOpusError> {
    if !packet.starts_with(b"OpusHead") {
        return Err(OggOpusError::NotOpus);
    }
    if packet.len() < 19 || packet[8] >> 4 != 0 || packet[9] == 0 {
        // Too short, an incompatible major version, or no channels.
        return Err(OggOpusError::BadHeader);
    }
    let channels = packet[9];
    let family = packet[18];
    if family != 0 || channels > 2 {
        return Err(OggOpusError::Unsupported);
    }
    Ok(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        input_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
        gain_q8: i16::from_le_bytes([packet[16], packet[17]]),
    })
}

/// Where the page being assembled is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PagePart {
    /// The 27-byte fixed header.
    Header,
    /// The segment table (this many bytes).
    Segments(usize),
    /// The body (this many bytes).
    Body(usize),
}

/// Where the logical stream is.
enum StreamState {
    /// Waiting for a stream's first page (`OpusHead`).
    Head,
    /// Waiting for `OpusTags`.
    Tags { serial: u32, head: OpusHead },
    /// Audio.
    Audio(Box<AudioState>),
}

struct AudioState {
    serial: u32,
    decoder: OpusDecoder,
    /// Decoded samples still to drop (the pre-skip), at the decoder's rate.
    skip: usize,
    /// Samples decoded so far, at 48 kHz, counting the pre-skip (the granule position's scale).
    decoded_48k: u64,
}

/// One Ogg Opus input, decoded to mono at a rate chosen per stream (see [`decode_rate`]).
/// Streams may follow one another (chained): each gets a decoder of its own.
pub struct OggOpusStream {
    target_rate: u32,
    part: PagePart,
    /// The part of a page received so far.
    buf: Vec<u8>,
    parser: Option<PageParser>,
    packets: BasePacketReader,
    /// The last page taken ends inside a packet (its last lacing value is 255).
    open_packet: bool,
    state: StreamState,
}

impl std::fmt::Debug for OggOpusStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusStream").field("part", &self.part).field("buffered", &self.buf.len()).finish()
    }
}

/// A decoded packet: `len` samples at `rate` Hz in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Samples written.
    pub len: usize,
    /// Their rate, Hz.
    pub rate: u32,
    /// The packet was its stream's first audio packet.
    pub first: bool,
    /// The packet was its stream's last (the next one starts a new stream).
    pub last: bool,
}

impl OggOpusStream {
    /// A player for a path that wants `target_rate` Hz.
    pub fn new(target_rate: u32) -> Self {
        Self {
            target_rate,
            part: PagePart::Header,
            buf: Vec::new(),
            parser: None,
            packets: BasePacketReader::new(),
            open_packet: false,
            state: StreamState::Head,
        }
    }

    /// Takes bytes of `data` until a page is complete (then stops, so that its packets are
    /// decoded before more input is taken) or `data` runs out; returns how many it took.
    pub fn push(&mut self, data: &[u8]) -> Result<usize, OggOpusError> {
        let mut taken = 0;
        while taken < data.len() {
            let need = match self.part {
                PagePart::Header => 27,
                PagePart::Segments(n) | PagePart::Body(n) => n,
            };
            let n = (need - self.buf.len()).min(data.len() - taken);
            self.buf.extend_from_slice(&data[taken..taken + n]);
            taken += n;
            if self.buf.len() < need {
                break;
            }
            if self.advance()? {
                break;
            }
        }
        Ok(taken)
    }

    /// A page part is complete in `buf`: moves to the next; `true` when a page was pushed.
    fn advance(&mut self) -> Result<bool, OggOpusError> {
        let buf = std::mem::take(&mut self.buf);
        match self.part {
            PagePart::Header => {
                if !buf.starts_with(b"OggS") {
                    return Err(OggOpusError::CapturePattern);
                }
                let mut header = [0u8; 27];
                header.copy_from_slice(&buf);
                let (parser, segments) = PageParser::new(header)?;
                self.parser = Some(parser);
                self.part = PagePart::Segments(segments);
                if segments == 0 {
                    return self.segments_done(Vec::new());
                }
                Ok(false)
            }
            PagePart::Segments(_) => self.segments_done(buf),
            PagePart::Body(_) => self.body_done(buf),
        }
    }

    fn segments_done(&mut self, segments: Vec<u8>) -> Result<bool, OggOpusError> {
        self.open_packet = segments.last() == Some(&255);
        let parser = self.parser.as_mut().ok_or(OggOpusError::PageOrder)?;
        let body = parser.parse_segments(segments);
        self.part = PagePart::Body(body);
        if body == 0 {
            return self.body_done(Vec::new());
        }
        Ok(false)
    }

    fn body_done(&mut self, body: Vec<u8>) -> Result<bool, OggOpusError> {
        let parser = self.parser.take().ok_or(OggOpusError::PageOrder)?;
        let page = parser.parse_packet_data(body)?;
        self.packets.push_page(page)?;
        self.part = PagePart::Header;
        Ok(true)
    }

    /// Decodes the next audio packet of the pages taken into `out` (at least
    /// [`MAX_PACKET_SAMPLES`] long), reading the headers on the way. `Ok(None)`: more input is
    /// needed. A packet may decode to no samples (within the pre-skip, or trimmed at the end).
    pub fn decode_next(&mut self, out: &mut [i16]) -> Result<Option<Decoded>, OggOpusError> {
        debug_assert!(out.len() >= MAX_PACKET_SAMPLES);
        loop {
            let Some(packet) = self.packets.read_packet() else {
                return Ok(None);
            };
            let serial = packet.stream_serial();
            match &mut self.state {
                StreamState::Head => {
                    if !packet.first_in_stream() {
                        return Err(OggOpusError::PageOrder);
                    }
                    let head = parse_opus_head(&packet.data)?;
                    // The head is alone on the stream's first page (RFC 7845, 3).
                    if !packet.last_in_page() {
                        return Err(OggOpusError::BadHeader);
                    }
                    self.state = StreamState::Tags { serial, head };
                }
                StreamState::Tags { serial: s, head } => {
                    if serial != *s {
                        return Err(OggOpusError::Multiplexed);
                    }
                    if !packet.data.starts_with(b"OpusTags") {
                        return Err(OggOpusError::BadHeader);
                    }
                    let head = *head;
                    let rate = decode_rate(head.input_rate, self.target_rate);
                    let mut decoder = OpusDecoder::new(rate)?;
                    if head.gain_q8 != 0 {
                        decoder.set_gain(head.gain_q8)?;
                    }
                    let skip = (u64::from(head.pre_skip) * u64::from(rate) / 48_000) as usize;
                    self.state =
                        StreamState::Audio(Box::new(AudioState { serial, decoder, skip, decoded_48k: 0 }));
                    if packet.last_in_stream() {
                        self.state = StreamState::Head;
                    }
                }
                StreamState::Audio(audio) => {
                    if serial != audio.serial {
                        return Err(OggOpusError::Multiplexed);
                    }
                    let rate = audio.decoder.rate();
                    let n = audio.decoder.decode(&packet.data, out)?;
                    let start_48k = audio.decoded_48k;
                    let first = start_48k == 0;
                    audio.decoded_48k += n as u64 * 48_000 / u64::from(rate);
                    let skip = audio.skip.min(n);
                    audio.skip -= skip;
                    let mut end = n;
                    let last = packet.last_in_stream();
                    if last {
                        // The last page's granule position is where the audio ends (RFC 7845,
                        // 4.5): the rest of its last packet is padding.
                        let keep_48k = packet.absgp_page().saturating_sub(start_48k);
                        // (A granule far past the audio, from a broken file, keeps it all.)
                        end = end.min((keep_48k.saturating_mul(u64::from(rate)) / 48_000) as usize);
                        // The next bytes, if any, begin a new stream.
                        self.state = StreamState::Head;
                        self.packets = BasePacketReader::new();
                    }
                    let len = end.saturating_sub(skip);
                    out.copy_within(skip..skip + len, 0);
                    return Ok(Some(Decoded { len, rate, first, last }));
                }
            }
        }
    }

    /// The input is over: `Err(Truncated)` if it stopped inside a page or a packet.
    pub fn finish(&self) -> Result<(), OggOpusError> {
        let mid_page = self.part != PagePart::Header || !self.buf.is_empty();
        if mid_page || self.open_packet { Err(OggOpusError::Truncated) } else { Ok(()) }
    }
}
