//! Call recordings: two channels, the caller's audio as delivered (left) and the agent's as the
//! caller heard it (right), at the caller's rate.
//!
//! The worker only copies what it already has into a preallocated SPSC byte ring per recording
//! session ([`RecordTap`], the pipeline's [`CallTap`]): caller audio as delivered, each frame sent
//! to the carrier (still in the carrier's encoding) with where the caller hears it, and the cuts
//! of clears. A full ring drops the record and counts it (`recording_dropped_ms`); room is kept
//! for the cut and stop records, and a cut or stop that still finds none waits in the tap (cuts
//! merged into the earliest), sent ahead of the next record the ring takes, so a clear is not
//! lost while the call goes on (one still waiting when the stream ends is lost with the
//! recording's end, which then comes when the session is freed). Audio the
//! recorder thread cannot write (a full disk, an IO error) is counted in the same figure, through
//! an atomic the tap reads.
//!
//! One recorder thread per engine (started with its first recording session) serves every
//! recording: it drains the rings every 20 ms, decodes the agent's frames, and writes a sample of
//! both channels once the caller's timeline has reached it. Agent audio ahead of that is held:
//! a clear may still cut it. Files are flushed about once a second (a WAV's header rewritten, an
//! Ogg page ended), so a file is readable up to its last flush whatever becomes of the process;
//! a recording is closed (final header, end-of-stream page) when its stream stops, when its
//! session is freed, and when the engine is dropped.

use super::engine::EngineError;
use super::records::{self, HEADER, Header};
use crate::codec::{G711, decode_l16};
use crate::pipeline::CallTap;
use crate::protocol::AudioEncoding;
use crate::resample::StreamResampler;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ringbuf::traits::{Observer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Capacity of a recording's hand-off ring: 64 KiB is 2.4 s of an 8 kHz µ-law call (caller
/// audio as 16-bit samples, agent frames as sent, 13 bytes of header per record), against a
/// recorder that drains it every 20 ms.
pub(crate) const RING_BYTES: usize = 64 * 1024;
/// Room audio records leave free, so that cut and stop records always fit.
const CONTROL_RESERVE: usize = 4 * HEADER;
/// How often the recorder drains the rings.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// How often a file is flushed.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The most samples per channel a WAV recording holds: its sizes are 32-bit (4 GiB of stereo
/// 16-bit audio, 37 h at 8 kHz, 6.2 h at 48 kHz). Past it the recording ends, the rest counted as
/// unwritten, rather than wrap its header's sizes.
const WAV_MAX_SAMPLES: u64 = (u32::MAX as u64 - 44) / 4;

mod tag {
    /// `a`: caller rate, `c`: agent rate; body: the agent encoding (one byte).
    pub(super) const START: u8 = 1;
    /// `a`/`c`: position (low/high 32 bits); body: s16le samples.
    pub(super) const CALLER: u8 = 2;
    /// `a`/`c`: position; body: the length (u64 le).
    pub(super) const SILENCE: u8 = 3;
    /// `a`/`c`: position; body: a frame in the carrier's encoding.
    pub(super) const AGENT: u8 = 4;
    /// `a`/`c`: position.
    pub(super) const CUT: u8 = 5;
    pub(super) const STOP: u8 = 6;
}

fn encoding_code(e: AudioEncoding) -> u8 {
    match e {
        AudioEncoding::Mulaw => 0,
        AudioEncoding::Alaw => 1,
        // The rest reach the recording as the 16-bit samples the carrier's frame was coded from.
        _ => 2,
    }
}

fn encoding_of(code: u8) -> AudioEncoding {
    match code {
        0 => AudioEncoding::Mulaw,
        1 => AudioEncoding::Alaw,
        _ => AudioEncoding::L16,
    }
}

fn split(pos: u64) -> (u32, u32) {
    (pos as u32, (pos >> 32) as u32)
}

/// A recording's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Wav,
    #[cfg(feature = "opus")]
    OggOpus,
}

fn format_of(path: &Path) -> Result<Format, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "wav" => Ok(Format::Wav),
        #[cfg(feature = "opus")]
        "opus" | "ogg" => Ok(Format::OggOpus),
        #[cfg(not(feature = "opus"))]
        "opus" | "ogg" => Err("Ogg Opus recordings need the `opus` feature".into()),
        _ => Err("unknown recording format: the extension must be .wav, .opus or .ogg".into()),
    }
}

/// The worker's end of a recording (see the module docs).
pub(crate) struct RecordTap {
    prod: HeapProd<u8>,
    caller_rate: u32,
    agent_rate: u32,
    agent_bytes: usize,
    /// Where the last agent frame ends, caller-rate samples.
    agent_end: u64,
    /// Caller-rate samples of audio dropped.
    dropped: u64,
    /// Samples the recorder thread could not write (both channels summed), at the caller's rate.
    unwritten: Arc<AtomicU64>,
    /// A cut the ring had no room for even in its reserve (the recorder stalled through several
    /// clears), the earliest if several: sent before any later record, which waits behind it
    /// (dropped, counted), so that it cuts only the audio it was meant to.
    pending_cut: Option<u64>,
    /// A stop the ring had no room for, sent after the pending cut.
    pending_stop: bool,
}

impl RecordTap {
    fn new(prod: HeapProd<u8>, unwritten: Arc<AtomicU64>) -> Self {
        Self {
            prod,
            caller_rate: 8_000,
            agent_rate: 8_000,
            agent_bytes: 1,
            agent_end: 0,
            dropped: 0,
            unwritten,
            pending_cut: None,
            pending_stop: false,
        }
    }

    /// Sends an audio record, leaving the control reserve free, once the controls waiting for
    /// room have gone.
    fn send(&mut self, header: Header, body: &[u8]) -> bool {
        self.send_pending() && records::write(&mut self.prod, header, &[body], CONTROL_RESERVE)
    }

    /// Sends the cut and stop waiting for room, in that order; whether none is left waiting.
    fn send_pending(&mut self) -> bool {
        if let Some(at) = self.pending_cut {
            let (a, c) = split(at);
            if !records::write(&mut self.prod, Header { tag: tag::CUT, a, b: 0, c }, &[], 0) {
                return false;
            }
            self.pending_cut = None;
        }
        if self.pending_stop {
            if !records::write(&mut self.prod, Header { tag: tag::STOP, a: 0, b: 0, c: 0 }, &[], 0) {
                return false;
            }
            self.pending_stop = false;
        }
        true
    }
}

impl CallTap for RecordTap {
    fn started(&mut self, caller_rate: u32, agent_rate: u32, agent_encoding: AudioEncoding) {
        self.caller_rate = caller_rate.max(1);
        self.agent_rate = agent_rate.max(1);
        self.agent_bytes = agent_encoding.bytes_per_sample();
        let header = Header { tag: tag::START, a: caller_rate, b: 1, c: agent_rate };
        // The first record of an empty ring: it fits.
        records::write(&mut self.prod, header, &[&[encoding_code(agent_encoding)]], 0);
    }

    fn caller_audio(&mut self, start: u64, pcm: &[i16]) {
        let (a, c) = split(start);
        let header = Header { tag: tag::CALLER, a, b: 2 * pcm.len() as u32, c };
        if !self.send(header, bytemuck::cast_slice(pcm)) {
            self.dropped += pcm.len() as u64;
        }
    }

    fn caller_silence(&mut self, start: u64, len: u64) {
        let (a, c) = split(start);
        let header = Header { tag: tag::SILENCE, a, b: 8, c };
        if !self.send(header, &len.to_le_bytes()) {
            self.dropped += len;
        }
    }

    fn agent_frame(&mut self, at: Option<u64>, frame: &[u8]) {
        let at = at.unwrap_or(self.agent_end);
        let samples = (frame.len() / self.agent_bytes.max(1)) as u64;
        let caller_samples = samples * u64::from(self.caller_rate) / u64::from(self.agent_rate);
        self.agent_end = at + caller_samples;
        let (a, c) = split(at);
        let header = Header { tag: tag::AGENT, a, b: frame.len() as u32, c };
        if !self.send(header, frame) {
            self.dropped += caller_samples;
        }
    }

    fn agent_cut(&mut self, at: u64) {
        self.agent_end = self.agent_end.min(at);
        // Into the reserve audio records leave (the worker is the only writer); past it, it waits.
        // Two cuts with no record between them cut as the earlier does.
        self.pending_cut = Some(self.pending_cut.map_or(at, |earlier| earlier.min(at)));
        self.send_pending();
    }

    fn stopped(&mut self) {
        self.pending_stop = true;
        self.send_pending();
    }

    fn dropped_ms(&self) -> u64 {
        let lost = self.dropped + self.unwritten.load(Ordering::Relaxed);
        lost * 1000 / u64::from(self.caller_rate.max(1))
    }
}

/// A recording whose format is known and whose file is not created yet (see [`open`]).
pub(crate) struct PendingRecording {
    path: PathBuf,
    format: Format,
    cons: HeapCons<u8>,
    unwritten: Arc<AtomicU64>,
}

/// A recording with its file, on the host's thread, not yet handed to the recorder.
pub(crate) struct OpenedRecording {
    format: Format,
    file: File,
    cons: HeapCons<u8>,
    unwritten: Arc<AtomicU64>,
}

/// Checks the recording's format and makes its ring (on the host's thread, at open); the file is
/// created by [`PendingRecording::create`] once the session is sure to open, so that an open
/// refused for another reason leaves a file already at the path as it was.
pub(crate) fn open(path: &Path) -> Result<(RecordTap, PendingRecording), EngineError> {
    let format = format_of(path).map_err(|reason| EngineError::Record { path: path.to_owned(), reason })?;
    let (prod, cons) = HeapRb::<u8>::new(RING_BYTES).split();
    let unwritten = Arc::new(AtomicU64::new(0));
    let tap = RecordTap::new(prod, unwritten.clone());
    Ok((tap, PendingRecording { path: path.to_owned(), format, cons, unwritten }))
}

impl PendingRecording {
    /// Creates the file, replacing one at the path.
    pub(crate) fn create(self) -> Result<OpenedRecording, EngineError> {
        let file = File::create(&self.path)
            .map_err(|e| EngineError::Record { path: self.path.clone(), reason: e.to_string() })?;
        Ok(OpenedRecording { format: self.format, file, cons: self.cons, unwritten: self.unwritten })
    }
}

/// A recording tap as sessions get one, for this workspace's benchmarks (`internals`): its ring
/// goes to no file; the closure empties it (the recorder thread's part, left out of a worker's
/// cost).
#[cfg(feature = "internals")]
pub fn bench_tap() -> (Box<dyn CallTap>, Box<dyn FnMut() + Send>) {
    use ringbuf::traits::Consumer;
    let (prod, mut cons) = HeapRb::<u8>::new(RING_BYTES).split();
    let tap = RecordTap::new(prod, Arc::default());
    (
        Box::new(tap),
        Box::new(move || {
            cons.clear();
        }),
    )
}

enum Control {
    Add(OpenedRecording),
    Stop,
}

/// The engine's recorder thread.
pub(crate) struct Recorder {
    tx: Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the thread.
    pub(crate) fn start() -> std::io::Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread = std::thread::Builder::new().name("trunkline-recorder".into()).spawn(move || run(&rx))?;
        Ok(Self { tx, thread: Some(thread) })
    }

    /// Hands a recording to the thread.
    pub(crate) fn add(&self, recording: OpenedRecording) {
        let _ = self.tx.send(Control::Add(recording));
    }
}

impl Drop for Recorder {
    /// Closes every recording (what their rings hold is written first) and joins the thread.
    fn drop(&mut self) {
        let _ = self.tx.send(Control::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(rx: &Receiver<Control>) {
    let mut recordings: Vec<Recording> = Vec::new();
    let mut stopping = false;
    while !stopping {
        // With nothing to record the thread sleeps until a recording or the engine's end comes.
        let received = if recordings.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(DRAIN_EVERY)
        };
        match received {
            Ok(Control::Add(p)) => recordings.push(Recording::new(p)),
            Ok(Control::Stop) | Err(RecvTimeoutError::Disconnected) => stopping = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        for r in &mut recordings {
            r.drain();
            if now.duration_since(r.last_flush) >= FLUSH_EVERY {
                r.flush();
                r.last_flush = now;
            }
        }
        recordings.retain_mut(|r| {
            if r.ended() || stopping {
                r.finish();
                false
            } else {
                true
            }
        });
    }
}

/// Where a recording's samples go.
enum Sink {
    Wav(hound::WavWriter<BufWriter<File>>),
    #[cfg(feature = "opus")]
    Opus(Box<ogg_sink::OggOpusSink>),
    /// The file could not be written (an IO error, a rate the encoder does not take): the
    /// recording stops there, what was flushed stays.
    Broken,
}

/// One recording, on the recorder thread.
struct Recording {
    format: Format,
    /// The file until the stream's rate is known.
    file: Option<File>,
    sink: Option<Sink>,
    cons: HeapCons<u8>,
    /// Shared with the tap: samples that could not be written.
    unwritten: Arc<AtomicU64>,
    rate: u32,
    agent_rate: u32,
    agent_encoding: AudioEncoding,
    to_rate: Option<StreamResampler>,
    /// Samples of both channels written to the file.
    written: u64,
    /// Of those, the ones known to be on disk (written before the last flush that succeeded, or
    /// counted lost): a failure loses what was written after them too.
    settled: u64,
    /// Caller audio from `written` on.
    caller: Vec<i16>,
    /// Agent audio from `written` on (silence where nothing was heard); may run past `caller`.
    agent: Vec<i16>,
    stopped: bool,
    last_flush: Instant,
    body: Vec<u8>,
}

impl Recording {
    fn new(p: OpenedRecording) -> Self {
        Self {
            format: p.format,
            file: Some(p.file),
            sink: None,
            cons: p.cons,
            unwritten: p.unwritten,
            rate: 8_000,
            agent_rate: 8_000,
            agent_encoding: AudioEncoding::Mulaw,
            to_rate: None,
            written: 0,
            settled: 0,
            caller: Vec::new(),
            agent: Vec::new(),
            stopped: false,
            last_flush: Instant::now(),
            body: Vec::new(),
        }
    }

    /// Whether the stream stopped, or the session was freed, with everything taken.
    fn ended(&self) -> bool {
        self.stopped || (!self.cons.write_is_held() && self.cons.is_empty())
    }

    /// Takes every record in the ring, then writes what both channels are known for.
    fn drain(&mut self) {
        while let Some(h) = records::next(&mut self.cons, |h| h.b as usize) {
            let len = h.b as usize;
            self.body.resize(len, 0);
            records::take(&mut self.cons, len, &mut self.body);
            let pos = u64::from(h.a) | (u64::from(h.c) << 32);
            match h.tag {
                tag::START => {
                    self.rate = h.a.max(1);
                    self.agent_rate = h.c.max(1);
                    self.agent_encoding = encoding_of(self.body.first().copied().unwrap_or(0));
                    self.to_rate = (self.agent_rate != self.rate)
                        .then(|| StreamResampler::new(self.agent_rate, self.rate).ok())
                        .flatten();
                }
                tag::CALLER => {
                    let pcm: Vec<i16> =
                        self.body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    self.caller_at(pos, &pcm);
                }
                tag::SILENCE => {
                    let len =
                        self.body.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                    self.caller_at(pos, &vec![0; len as usize]);
                }
                tag::AGENT => {
                    let body = std::mem::take(&mut self.body);
                    self.agent_at(pos, &body);
                    self.body = body;
                }
                tag::CUT => {
                    let keep = pos.saturating_sub(self.written) as usize;
                    self.agent.truncate(keep);
                    // The audio after a cut is a new stretch: the filter's history of what was
                    // cut must not ring into it.
                    if let Some(r) = self.to_rate.as_mut() {
                        r.reset();
                    }
                }
                tag::STOP => self.stopped = true,
                _ => {}
            }
        }
        let ready = self.caller.len();
        self.write(ready);
    }

    fn caller_at(&mut self, pos: u64, pcm: &[i16]) {
        let end = self.written + self.caller.len() as u64;
        if pos > end {
            // A discontinuity the engine did not fill: silence on the recording's timeline.
            self.caller.resize(self.caller.len() + (pos - end) as usize, 0);
        }
        let skip = (end.saturating_sub(pos) as usize).min(pcm.len());
        self.caller.extend_from_slice(&pcm[skip..]);
    }

    fn agent_at(&mut self, pos: u64, frame: &[u8]) {
        let mut pcm = vec![0i16; frame.len()];
        let n = match self.agent_encoding {
            AudioEncoding::Mulaw => G711::Mulaw.decode(frame, &mut pcm),
            AudioEncoding::Alaw => G711::Alaw.decode(frame, &mut pcm),
            _ => decode_l16(frame, &mut pcm),
        };
        pcm.truncate(n);
        if let Some(r) = self.to_rate.as_mut() {
            let mut out = vec![0i16; r.max_output_len(n)];
            let m = r.process(&pcm, &mut out).unwrap_or(0);
            out.truncate(m);
            pcm = out;
        }
        // Audio placed before what was written already (it cannot happen unless the caller's
        // timeline jumped) is dropped.
        let skip = (self.written.saturating_sub(pos) as usize).min(pcm.len());
        let off = pos.saturating_sub(self.written) as usize;
        let end = off + pcm.len() - skip;
        if self.agent.len() < end {
            self.agent.resize(end, 0);
        }
        self.agent[off..end].copy_from_slice(&pcm[skip..]);
    }

    fn sink(&mut self) -> &mut Sink {
        if self.sink.is_none() {
            let file = self.file.take();
            let sink = file.and_then(|file| match self.format {
                Format::Wav => {
                    let spec = hound::WavSpec {
                        channels: 2,
                        sample_rate: self.rate,
                        bits_per_sample: 16,
                        sample_format: hound::SampleFormat::Int,
                    };
                    hound::WavWriter::new(BufWriter::new(file), spec).ok().map(Sink::Wav)
                }
                #[cfg(feature = "opus")]
                Format::OggOpus => {
                    ogg_sink::OggOpusSink::new(file, self.rate).map(|s| Sink::Opus(Box::new(s)))
                }
            });
            self.sink = Some(sink.unwrap_or(Sink::Broken));
        }
        self.sink.get_or_insert(Sink::Broken)
    }

    /// Writes the first `n` samples of both channels.
    fn write(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let mut frames = Vec::with_capacity(2 * n);
        for i in 0..n {
            frames.push(self.caller.get(i).copied().unwrap_or(0));
            frames.push(self.agent.get(i).copied().unwrap_or(0));
        }
        let fits = self.format != Format::Wav || self.written + n as u64 <= WAV_MAX_SAMPLES;
        if !fits {
            // The file is full, not failed: what it was given so far is kept (flushed, and its
            // header finalized as the writer is dropped), only what does not fit is lost.
            self.flush();
        }
        let ok = match self.sink() {
            Sink::Wav(w) => fits && frames.iter().try_for_each(|&s| w.write_sample(s)).is_ok(),
            #[cfg(feature = "opus")]
            Sink::Opus(o) => o.write(&frames).is_ok(),
            Sink::Broken => false,
        };
        self.caller.drain(..n.min(self.caller.len()));
        self.agent.drain(..n.min(self.agent.len()));
        self.written += n as u64;
        if !ok {
            self.lost();
        }
    }

    /// The file failed: what was written since it last settled is lost on both channels, and the
    /// sink is broken for good (a file cut mid-sample cannot be continued).
    fn lost(&mut self) {
        self.sink = Some(Sink::Broken);
        self.unwritten.fetch_add(2 * (self.written - self.settled), Ordering::Relaxed);
        self.settled = self.written;
    }

    fn flush(&mut self) {
        let ok = match self.sink.as_mut() {
            Some(Sink::Wav(w)) => w.flush().is_ok(),
            #[cfg(feature = "opus")]
            Some(Sink::Opus(o)) => o.flush().is_ok(),
            Some(Sink::Broken) | None => return,
        };
        if ok {
            self.settled = self.written;
        } else {
            self.lost();
        }
    }

    /// Writes what is left and closes the file. Agent audio past the caller's timeline was not
    /// confirmed heard (a stopped stream cut it already): it is left out.
    fn finish(&mut self) {
        self.drain();
        // A recording that never started still becomes a valid (empty) file.
        self.sink();
        let ok = match self.sink.take() {
            Some(Sink::Wav(w)) => w.finalize().is_ok(),
            #[cfg(feature = "opus")]
            Some(Sink::Opus(o)) => o.finish().is_ok(),
            Some(Sink::Broken) | None => true,
        };
        if !ok {
            self.lost();
        }
    }
}

#[cfg(feature = "opus")]
mod ogg_sink {
    //! Stereo Ogg Opus (RFC 7845): `OpusHead` and `OpusTags` on pages of their own, then 20 ms
    //! packets with granule positions at 48 kHz, the first `pre-skip` of them the encoder's delay.

    use audiopus::coder::Encoder;
    use audiopus::{Application, Bitrate, Channels};
    use ogg::writing::{PacketWriteEndInfo, PacketWriter};
    use std::fs::File;
    use std::io::{self, BufWriter, Write};

    /// The logical stream's serial number (one stream per file).
    const SERIAL: u32 = 0x7472_6b6c;
    /// 20 ms packets per page at most (half a second).
    const PACKETS_PER_PAGE: u64 = 25;

    pub(super) struct OggOpusSink {
        writer: PacketWriter<'static, BufWriter<File>>,
        encoder: Encoder,
        /// Samples per channel in a 20 ms packet at the input rate.
        frame: usize,
        rate: u32,
        pre_skip: u64,
        /// Interleaved samples waiting for a whole packet.
        pcm: Vec<i16>,
        /// Samples per channel taken in all.
        samples: u64,
        /// Samples per channel encoded (whole packets).
        encoded: u64,
        /// The last packet, written once the next one (or the end) says how its page ends.
        held: Option<(Vec<u8>, u64)>,
        out: Vec<u8>,
    }

    fn io_err(e: impl std::fmt::Display) -> io::Error {
        io::Error::other(e.to_string())
    }

    impl OggOpusSink {
        pub(super) fn new(file: File, rate: u32) -> Option<Self> {
            let mut encoder =
                Encoder::new(crate::codec::opus::sample_rate(rate)?, Channels::Stereo, Application::Audio)
                    .ok()?;
            // Two independent voices: enough bits that neither is smeared into the other.
            encoder.set_bitrate(Bitrate::BitsPerSecond(64_000)).ok()?;
            let lookahead = u64::from(encoder.lookahead().ok()?);
            let pre_skip = lookahead * 48_000 / u64::from(rate);
            let mut writer = PacketWriter::new(BufWriter::new(file));
            let mut head = Vec::with_capacity(19);
            head.extend_from_slice(b"OpusHead");
            head.push(1);
            head.push(2);
            head.extend_from_slice(&(pre_skip as u16).to_le_bytes());
            head.extend_from_slice(&rate.to_le_bytes());
            head.extend_from_slice(&0i16.to_le_bytes());
            head.push(0);
            writer.write_packet(head, SERIAL, PacketWriteEndInfo::EndPage, 0).ok()?;
            let vendor = b"trunkline";
            let mut tags = Vec::new();
            tags.extend_from_slice(b"OpusTags");
            tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
            tags.extend_from_slice(vendor);
            tags.extend_from_slice(&0u32.to_le_bytes());
            writer.write_packet(tags, SERIAL, PacketWriteEndInfo::EndPage, 0).ok()?;
            Some(Self {
                writer,
                encoder,
                frame: rate as usize / 50,
                rate,
                pre_skip,
                pcm: Vec::new(),
                samples: 0,
                encoded: 0,
                held: None,
                out: vec![0; 4000],
            })
        }

        /// The granule position after `samples` input samples per channel were encoded (the
        /// decoder's output, pre-skip included).
        fn granule(&self, samples: u64) -> u64 {
            samples * 48_000 / u64::from(self.rate)
        }

        fn release(&mut self, end: PacketWriteEndInfo) -> io::Result<()> {
            if let Some((packet, granule)) = self.held.take() {
                self.writer.write_packet(packet, SERIAL, end, granule)?;
            }
            Ok(())
        }

        fn encode_packet(&mut self) -> io::Result<()> {
            let n = self.encoder.encode(&self.pcm[..2 * self.frame], &mut self.out).map_err(io_err)?;
            self.pcm.drain(..2 * self.frame);
            self.encoded += self.frame as u64;
            // A page every half second of audio, whatever the flushes: players expect pages short.
            let end = if self.encoded.is_multiple_of(self.frame as u64 * PACKETS_PER_PAGE) {
                PacketWriteEndInfo::EndPage
            } else {
                PacketWriteEndInfo::NormalPacket
            };
            self.release(end)?;
            self.held = Some((self.out[..n].to_vec(), self.granule(self.encoded)));
            Ok(())
        }

        /// Takes interleaved stereo samples.
        pub(super) fn write(&mut self, frames: &[i16]) -> io::Result<()> {
            self.pcm.extend_from_slice(frames);
            self.samples += (frames.len() / 2) as u64;
            while self.pcm.len() >= 2 * self.frame {
                self.encode_packet()?;
            }
            Ok(())
        }

        /// Ends the page with the packets so far and flushes the file.
        pub(super) fn flush(&mut self) -> io::Result<()> {
            self.release(PacketWriteEndInfo::EndPage)?;
            self.writer.inner_mut().flush()
        }

        /// Encodes what is left, padded with silence until the encoder's delay (the pre-skip) is
        /// through, and ends the stream with the granule position trimmed to the samples taken.
        pub(super) fn finish(mut self) -> io::Result<()> {
            let rate = u64::from(self.rate);
            let needed = self.samples + (self.pre_skip * rate).div_ceil(48_000);
            while self.encoded < needed || self.held.is_none() {
                self.pcm.resize(2 * self.frame, 0);
                self.encode_packet()?;
            }
            if let Some((_, granule)) = self.held.as_mut() {
                // Never before the previous packet's end.
                let end = self.pre_skip + self.samples * 48_000 / rate;
                *granule = end.max(*granule - self.frame as u64 * 48_000 / rate);
            }
            self.release(PacketWriteEndInfo::EndStream)?;
            self.writer.inner_mut().flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_recording_ends_at_the_formats_size_limit_and_counts_the_rest() {
        let path = std::env::temp_dir().join(format!("trunkline-wav-limit-{}.wav", std::process::id()));
        let (_tap, pending) = open(&path).unwrap();
        let mut r = Recording::new(pending.create().unwrap());
        r.caller = vec![1; 100];
        r.agent = vec![2; 100];
        r.write(50);
        assert!(matches!(r.sink, Some(Sink::Wav(_))));
        // As if the call had run 37 hours: the next samples would pass 4 GiB.
        r.written = WAV_MAX_SAMPLES - 10;
        r.write(50);
        assert!(matches!(r.sink, Some(Sink::Broken)));
        assert_eq!(r.unwritten.load(Ordering::Relaxed), 100);
        r.finish();
        // What was written before stays a valid file.
        let reader = hound::WavReader::open(&path).unwrap();
        assert_eq!(reader.len(), 100);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn nothing_of_the_audio_a_cut_dropped_rings_into_what_follows_it() {
        // The carrier is sent 16 kHz audio on an 8 kHz call: the recording resamples the agent's
        // frames. A loud frame, a clear at its end, then silence from there: the silence stays
        // silent (the resampler's memory of the loud frame was cut with it).
        let path = std::env::temp_dir().join(format!("trunkline-cut-{}.wav", std::process::id()));
        let (mut tap, pending) = open(&path).unwrap();
        let mut r = Recording::new(pending.create().unwrap());
        tap.started(8_000, 16_000, AudioEncoding::L16);
        let loud: Vec<u8> =
            (0..320).flat_map(|i| (if i % 2 == 0 { 20_000i16 } else { -20_000 }).to_le_bytes()).collect();
        tap.agent_frame(Some(0), &loud);
        tap.agent_cut(160);
        tap.agent_frame(Some(160), &[0u8; 640]);
        r.drain();
        let _ = std::fs::remove_file(&path);
        assert!(r.agent[..160].iter().any(|&v| v != 0));
        let after: Vec<i16> = r.agent[160..320].to_vec();
        assert!(after.iter().all(|&v| v == 0), "{after:?}");
    }

    #[test]
    fn cuts_and_a_stop_a_full_ring_has_no_room_for_wait_and_come_before_later_records() {
        // The recorder stalled through several clears: the ring is full of caller audio, and
        // more cuts come than the room audio leaves. Each used to be dropped once the reserve
        // was spent, leaving cleared agent audio in the recording as if the caller heard it.
        let (prod, mut cons) = HeapRb::<u8>::new(1024).split();
        let mut tap = RecordTap::new(prod, Arc::new(AtomicU64::new(0)));
        tap.started(8_000, 8_000, AudioEncoding::Mulaw);
        let mut at = 0;
        // Full to within one 1-sample record of the reserve.
        for len in [80, 1] {
            let dropped = tap.dropped;
            while tap.dropped == dropped {
                tap.caller_audio(at, &vec![1; len]);
                at += len as u64;
            }
        }
        for cut in [900, 800, 700, 600, 500, 400] {
            tap.agent_cut(cut);
        }
        tap.stopped();
        let read = |cons: &mut HeapCons<u8>, records: &mut Vec<(u8, u64)>| {
            while let Some(h) = records::next(cons, |h| h.b as usize) {
                records::skip(cons, h.b as usize);
                records.push((h.tag, u64::from(h.a) | (u64::from(h.c) << 32)));
            }
        };
        let mut seen = Vec::new();
        read(&mut cons, &mut seen);
        // The recorder catches up; the call goes on.
        tap.caller_audio(at, &[1; 80]);
        read(&mut cons, &mut seen);
        let controls: Vec<(u8, u64)> =
            seen.iter().copied().filter(|(t, _)| matches!(*t, tag::CUT | tag::STOP)).collect();
        let cuts: Vec<u64> = controls.iter().filter(|(t, _)| *t == tag::CUT).map(|&(_, at)| at).collect();
        assert!(cuts.len() < 6, "the ring had room for every cut: the test does not fill it ({cuts:?})");
        assert_eq!(cuts.last(), Some(&400), "the earliest cut arrives: {controls:?}");
        assert!(cuts.windows(2).all(|w| w[0] > w[1]), "{cuts:?}");
        assert_eq!(controls.last(), Some(&(tag::STOP, 0)), "then the stop: {controls:?}");
        assert_eq!(seen.last(), Some(&(tag::CALLER, at)), "the audio after them comes after them");
    }

    #[test]
    fn a_short_recording_a_full_disk_keeps_out_is_counted_when_its_file_is_closed() {
        // 100 ms fits the file's write buffer: nothing fails until the buffer is flushed.
        let path = std::env::temp_dir().join(format!("trunkline-full-{}.wav", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let (_tap, pending) = open(&path).unwrap();
        let mut r = Recording::new(pending.create().unwrap());
        r.caller = vec![1; 800];
        r.agent = vec![2; 800];
        r.write(800);
        assert_eq!(r.unwritten.load(Ordering::Relaxed), 0);
        r.finish();
        let _ = std::fs::remove_file(&path);
        assert_eq!(r.unwritten.load(Ordering::Relaxed), 1_600);
    }
}
