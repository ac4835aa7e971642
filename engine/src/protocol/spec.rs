//! A dialect named with its options: `telnyx`, `telnyx;codec=L16;rate=16000`, `exotel;rate=16000`.
//!
//! Some carriers need a setting the call's own messages do not carry: what Telnyx is to receive
//! back (`stream_bidirectional_codec` and `_sampling_rate`, set when the stream was requested),
//! the rate of an Exotel stream whose `start` names none (the `?sample-rate=` of its URL), the
//! rate jambonz plays agent audio at (`bidirectionalAudio.sampleRate`). Every API already carries
//! the dialect's name as a string, so the options ride in it, `;`-separated `key=value` pairs,
//! and reach C, Python, Node and .NET hosts without a field of their own. A name alone takes the
//! carrier's defaults; an option a dialect does not know, or a value it cannot take, is refused
//! with the reason rather than ignored.

use std::fmt;

use super::{
    AudioEncoding, AudioSocketDialect, Dialect, ExotelDialect, JambonzDialect, MediaFormat, PlivoDialect,
    SignalWireDialect, TelnyxDialect, TwilioDialect, VonageDialect, exotel,
};

/// Why a dialect name could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialectError {
    /// No dialect of this name in this build (see [`super::DIALECTS`]).
    Unknown(String),
    /// The dialect exists but an option is wrong.
    Option {
        /// The dialect's name.
        dialect: String,
        /// The option as written (`key=value`).
        option: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for DialectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(name) => {
                write!(f, "unknown dialect {name:?} (this build speaks: {})", super::DIALECTS.join(", "))
            }
            Self::Option { dialect, option, reason } => {
                write!(f, "dialect {dialect:?}: option {option:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for DialectError {}

/// The dialect `spec` names (`name` or `name;key=value;...`, see the module documentation), with
/// its options applied.
pub fn dialect_by_name(spec: &str) -> Result<Box<dyn Dialect>, DialectError> {
    let name = dialect_name(spec);
    let parts = spec.split(';').skip(1);
    let mut options = Options { dialect: name, codec: None, rate: None };
    for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
        options.take(part)?;
    }
    Ok(match name {
        "twilio" => options.none(Box::new(TwilioDialect::new()))?,
        "plivo" => options.none(Box::new(PlivoDialect::new()))?,
        "vonage" => options.none(Box::new(VonageDialect::new()))?,
        "signalwire" => options.none(Box::new(SignalWireDialect::new()))?,
        "audiosocket" => options.none(Box::new(AudioSocketDialect::new()))?,
        "telnyx" => Box::new(options.telnyx()?),
        "exotel" => Box::new(options.exotel()?),
        "jambonz" => Box::new(options.jambonz()?),
        _ => return Err(DialectError::Unknown(name.to_owned())),
    })
}

/// The options of one spec, each kept with its text for the error that names it.
struct Options<'a> {
    dialect: &'a str,
    codec: Option<(&'a str, &'a str)>,
    rate: Option<(&'a str, u32)>,
}

impl<'a> Options<'a> {
    fn error(&self, option: &str, reason: &'static str) -> DialectError {
        DialectError::Option { dialect: self.dialect.to_owned(), option: option.to_owned(), reason }
    }

    fn take(&mut self, part: &'a str) -> Result<(), DialectError> {
        let Some((key, value)) = part.split_once('=') else {
            return Err(self.error(part, "expected key=value"));
        };
        let slot_taken = match key.trim() {
            "codec" => self.codec.replace((part, value.trim())).is_some(),
            "rate" => {
                let rate = value.trim().parse().map_err(|_| self.error(part, "not a rate in Hz"))?;
                self.rate.replace((part, rate)).is_some()
            }
            _ => return Err(self.error(part, "unknown option (known: codec, rate)")),
        };
        if slot_taken {
            return Err(self.error(part, "given twice"));
        }
        Ok(())
    }

    /// A dialect that takes no options.
    fn none(&self, dialect: Box<dyn Dialect>) -> Result<Box<dyn Dialect>, DialectError> {
        match (self.codec, self.rate) {
            (Some((part, _)), _) | (None, Some((part, _))) => {
                Err(self.error(part, "this dialect takes no options"))
            }
            (None, None) => Ok(dialect),
        }
    }

    /// Telnyx: what the call's `stream_bidirectional_codec` and `_sampling_rate` ask it to take
    /// back. `codec` is PCMU (default), PCMA, L16, G722 or OPUS (its spelling, case-sensitive as
    /// Telnyx's); G.711 is 8 kHz; L16 takes 8, 16 or 24 kHz (default 8); G.722 is 16 kHz audio
    /// (`rate=8000`, RTP's clock for it, means the same); Opus is encoded from 8, 16, 24 or 48 kHz
    /// (default 16: wideband speech at a modest bit rate, what a call's G.722 would carry).
    fn telnyx(&self) -> Result<TelnyxDialect, DialectError> {
        let (codec_part, codec) = self.codec.unwrap_or(("", "PCMU"));
        let encoding = match codec {
            "PCMU" => AudioEncoding::Mulaw,
            "PCMA" => AudioEncoding::Alaw,
            "L16" => AudioEncoding::L16,
            "G722" => AudioEncoding::G722,
            "OPUS" if cfg!(feature = "opus") => AudioEncoding::Opus,
            "OPUS" => return Err(self.error(codec_part, "OPUS needs a build with the opus feature")),
            _ => return Err(self.error(codec_part, "Telnyx codecs here: PCMU, PCMA, L16, G722, OPUS")),
        };
        let sample_rate = match (encoding, self.rate) {
            (AudioEncoding::G722, None | Some((_, 8000 | 16_000))) => 16_000,
            (AudioEncoding::G722, Some((part, _))) => {
                return Err(self.error(part, "G722 is 16000 Hz (8000, its RTP clock, means the same)"));
            }
            (AudioEncoding::Opus, None) => 16_000,
            (AudioEncoding::Opus, Some((_, rate @ (8000 | 16_000 | 24_000 | 48_000)))) => rate,
            (AudioEncoding::Opus, Some((part, _))) => {
                return Err(self.error(part, "OPUS rates: 8000, 16000, 24000, 48000"));
            }
            (_, None) => 8000,
            (AudioEncoding::L16, Some((_, rate @ (8000 | 16_000 | 24_000 | 48_000)))) => rate,
            (AudioEncoding::L16, Some((part, _))) => {
                return Err(self.error(part, "L16 rates: 8000, 16000, 24000, 48000"));
            }
            (_, Some((_, 8000))) => 8000,
            (_, Some((part, _))) => return Err(self.error(part, "PCMU and PCMA are 8000 Hz")),
        };
        Ok(TelnyxDialect::with_outbound_format(MediaFormat { encoding, sample_rate, channels: 1 }))
    }

    /// Exotel: the rate of a stream whose `start` names none (its URL's `?sample-rate=`).
    fn exotel(&self) -> Result<ExotelDialect, DialectError> {
        if let Some((part, _)) = self.codec {
            return Err(self.error(part, "Exotel streams L16 only"));
        }
        match self.rate {
            None => Ok(ExotelDialect::new()),
            Some((_, rate)) if exotel::SAMPLE_RATES.contains(&rate) => {
                Ok(ExotelDialect::with_sample_rate(rate))
            }
            Some((part, _)) => Err(self.error(part, "Exotel rates: 8000, 16000, 24000")),
        }
    }

    /// jambonz: the rate agent audio is played at (`bidirectionalAudio.sampleRate`), when it
    /// differs from the caller's.
    fn jambonz(&self) -> Result<JambonzDialect, DialectError> {
        if let Some((part, _)) = self.codec {
            return Err(self.error(part, "jambonz streams L16 only"));
        }
        match self.rate {
            None => Ok(JambonzDialect::new()),
            Some((_, rate @ (8000 | 16_000 | 24_000 | 48_000))) => {
                Ok(JambonzDialect::with_playback_rate(rate))
            }
            Some((part, _)) => Err(self.error(part, "jambonz playback rates: 8000, 16000, 24000, 48000")),
        }
    }
}

/// The dialect's name in `spec`, without its options (`telnyx;codec=PCMA` → `telnyx`).
pub fn dialect_name(spec: &str) -> &str {
    spec.split(';').next().unwrap_or_default().trim()
}

/// `spec` with `rate=` set from an Exotel WebSocket URL's query (`?sample-rate=16000`), unless the
/// spec already states a rate or is not Exotel's: what the offload server does with each Exotel
/// request, so a route for `exotel` streams at the rate its URL asked for.
pub fn with_exotel_query_rate(spec: &str, query: &str) -> Option<String> {
    let mut parts = spec.split(';').map(str::trim);
    if parts.next() != Some("exotel") || parts.any(|p| p.starts_with("rate")) {
        return None;
    }
    ExotelDialect::sample_rate_from_query(query).map(|rate| format!("{spec};rate={rate}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DIALECTS, StreamStart};

    fn start(format: MediaFormat) -> StreamStart {
        StreamStart {
            sequence: Some(1),
            account_id: String::new(),
            stream_id: "s".into(),
            call_id: "c".into(),
            tracks: vec![],
            custom_parameters: vec![],
            media_format: format,
        }
    }

    fn reason(spec: &str) -> &'static str {
        match dialect_by_name(spec) {
            Err(DialectError::Option { reason, .. }) => reason,
            other => panic!("{spec}: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn every_dialect_is_found_by_its_bare_name() {
        for name in DIALECTS {
            assert!(dialect_by_name(name).is_ok(), "{name}");
        }
        assert_eq!(dialect_by_name("twillio").err(), Some(DialectError::Unknown("twillio".into())));
    }

    #[test]
    fn telnyx_sends_back_the_format_its_options_name() {
        let caller = MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 };
        for (spec, encoding, sample_rate) in [
            ("telnyx", AudioEncoding::Mulaw, 8000),
            ("telnyx;codec=PCMA", AudioEncoding::Alaw, 8000),
            ("telnyx; codec=L16 ; rate=16000", AudioEncoding::L16, 16_000),
            ("telnyx;rate=8000;codec=L16", AudioEncoding::L16, 8000),
            ("telnyx;codec=L16;rate=48000", AudioEncoding::L16, 48_000),
            ("telnyx;codec=G722", AudioEncoding::G722, 16_000),
            ("telnyx;codec=G722;rate=8000", AudioEncoding::G722, 16_000),
            #[cfg(feature = "opus")]
            ("telnyx;codec=OPUS", AudioEncoding::Opus, 16_000),
            #[cfg(feature = "opus")]
            ("telnyx;codec=OPUS;rate=48000", AudioEncoding::Opus, 48_000),
        ] {
            let mut dialect = dialect_by_name(spec).unwrap();
            assert_eq!(
                dialect.on_start(&start(caller)).unwrap(),
                MediaFormat { encoding, sample_rate, channels: 1 },
                "{spec}"
            );
        }
    }

    #[test]
    fn exotel_and_jambonz_take_a_rate() {
        let l16 = |sample_rate| MediaFormat { encoding: AudioEncoding::L16, sample_rate, channels: 1 };
        let mut jambonz = dialect_by_name("jambonz;rate=24000").unwrap();
        assert_eq!(jambonz.on_start(&start(l16(8000))).unwrap(), l16(24_000));
        assert!(dialect_by_name("exotel;rate=16000").is_ok());
    }

    #[test]
    fn a_wrong_option_is_refused_with_its_reason() {
        assert_eq!(reason("twilio;rate=16000"), "this dialect takes no options");
        assert_eq!(reason("telnyx;codec=pcmu"), "Telnyx codecs here: PCMU, PCMA, L16, G722, OPUS");
        assert_eq!(
            reason("telnyx;codec=G722;rate=24000"),
            "G722 is 16000 Hz (8000, its RTP clock, means the same)"
        );
        #[cfg(feature = "opus")]
        assert_eq!(reason("telnyx;codec=OPUS;rate=12000"), "OPUS rates: 8000, 16000, 24000, 48000");
        assert_eq!(reason("telnyx;codec=PCMU;rate=16000"), "PCMU and PCMA are 8000 Hz");
        assert_eq!(reason("telnyx;codec=L16;rate=44100"), "L16 rates: 8000, 16000, 24000, 48000");
        assert_eq!(reason("exotel;rate=48000"), "Exotel rates: 8000, 16000, 24000");
        assert_eq!(reason("exotel;codec=PCMU"), "Exotel streams L16 only");
        assert_eq!(reason("jambonz;rate=fast"), "not a rate in Hz");
        assert_eq!(reason("jambonz;rate=8000;rate=16000"), "given twice");
        assert_eq!(reason("telnyx;PCMA"), "expected key=value");
        assert_eq!(reason("telnyx;bitrate=1"), "unknown option (known: codec, rate)");
        let message = dialect_by_name("exotel;rate=48000").err().unwrap().to_string();
        assert_eq!(message, "dialect \"exotel\": option \"rate=48000\": Exotel rates: 8000, 16000, 24000");
    }

    #[test]
    fn an_exotel_url_sets_the_rate_unless_the_spec_does() {
        assert_eq!(
            with_exotel_query_rate("exotel", "sample-rate=16000").as_deref(),
            Some("exotel;rate=16000")
        );
        assert_eq!(with_exotel_query_rate("exotel;rate=8000", "sample-rate=16000"), None);
        assert_eq!(with_exotel_query_rate("exotel", ""), None);
        assert_eq!(with_exotel_query_rate("twilio", "sample-rate=16000"), None);
    }
}
