//! How carriers authenticate their connection requests, checked on the WebSocket upgrade: each
//! dialect's scheme ([`request_auth`]), and Twilio's `X-Twilio-Signature`, computed (a client,
//! such as a caller simulator) and validated (a server). Behind the `request-auth` feature.
//!
//! Twilio signs every request it makes with the account's auth token: base64(HMAC-SHA1(token,
//! url + the POST parameters sorted by name, each as name followed by value)). A Media Streams
//! connection is a GET, so the signed string is the full URL Twilio connected to, query included.
//! Behind a TLS-terminating proxy the server sees neither the scheme nor (sometimes) the host
//! Twilio used, so the public URL base can be configured.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// How a carrier authenticates its connection request, for a server to check it against the
/// account's secret. Every comparison runs in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAuth {
    /// `X-Twilio-Signature`: base64 HMAC-SHA1 of the URL, keyed with the auth token.
    TwilioSignature,
    /// `X-Plivo-Signature-V3` (one or more, comma-separated) with `X-Plivo-Signature-V3-Nonce`:
    /// base64 HMAC-SHA256 of `url + "." + nonce`, keyed with the auth token, the URL's query sorted
    /// by key and its scheme `http`/`https` (as Plivo's SDK builds it).
    PlivoSignatureV3,
    /// A header carrying the secret itself (Telnyx's `x-telnyx-streaming-auth-token`).
    Token {
        /// The header (lower case).
        header: &'static str,
    },
    /// `Authorization: Bearer <secret>` (SignalWire's bearer token; Vonage's custom value).
    Bearer,
    /// `Authorization: Basic base64(<secret>)`, the secret being `user:password` (Exotel,
    /// jambonz).
    Basic,
}

/// How the carrier of the dialect named `dialect` authenticates its connection requests, if it
/// does in a way a server can check.
pub fn request_auth(dialect: &str) -> Option<RequestAuth> {
    Some(match dialect {
        "twilio" => RequestAuth::TwilioSignature,
        "plivo" => RequestAuth::PlivoSignatureV3,
        "telnyx" => RequestAuth::Token { header: "x-telnyx-streaming-auth-token" },
        "signalwire" | "vonage" => RequestAuth::Bearer,
        "exotel" | "jambonz" => RequestAuth::Basic,
        _ => return None,
    })
}

impl RequestAuth {
    /// Whether a request to `url` (see [`signed_url`]) whose headers `header` looks up (by lower
    /// case name) is authenticated by `secret`.
    pub fn check<'h>(self, secret: &str, url: &str, header: impl Fn(&str) -> Option<&'h str>) -> bool {
        match self {
            Self::TwilioSignature => {
                header("x-twilio-signature").is_some_and(|sig| validate(secret, url, sig))
            }
            Self::PlivoSignatureV3 => {
                let (Some(sigs), Some(nonce)) =
                    (header("x-plivo-signature-v3"), header("x-plivo-signature-v3-nonce"))
                else {
                    return false;
                };
                let expected = plivo_signature_v3(secret, url, nonce);
                // Several signatures may be sent (one per key): any may match.
                sigs.split(',')
                    .fold(false, |ok, sig| ok | constant_time_eq(sig.trim().as_bytes(), expected.as_bytes()))
            }
            Self::Token { header: name } => {
                header(name).is_some_and(|v| constant_time_eq(v.as_bytes(), secret.as_bytes()))
            }
            Self::Bearer => header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|v| constant_time_eq(v.trim().as_bytes(), secret.as_bytes())),
            Self::Basic => header("authorization").and_then(|v| v.strip_prefix("Basic ")).is_some_and(|v| {
                let expected = STANDARD.encode(secret);
                constant_time_eq(v.trim().as_bytes(), expected.as_bytes())
            }),
        }
    }
}

/// Equality that takes the same time wherever the inputs differ (their lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Plivo's V3 signature of a request to `url` with `nonce`: its SDK's algorithm (the query sorted
/// by key, the scheme `http`/`https`, then `"." + nonce`, HMAC-SHA256 keyed with the auth token).
pub fn plivo_signature_v3(auth_token: &str, url: &str, nonce: &str) -> String {
    let url = url.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_by_key(|p| p.split_once('=').map_or(*p, |(k, _)| k));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(base.as_bytes());
    if !params.is_empty() {
        mac.update(b"?");
        mac.update(params.join("&").as_bytes());
    }
    mac.update(b".");
    mac.update(nonce.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The signature Twilio computes for `url` and POST `params`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    let mut sorted: Vec<_> = params.to_vec();
    sorted.sort();
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` (the header's value) is Twilio's signature of `url` (a GET: no params).
/// Compared in constant time.
pub fn validate(auth_token: &str, url: &str, signature: &str) -> bool {
    let Ok(given) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// The URL Twilio signed, rebuilt from the request: `public_base` (e.g. `wss://bot.example.com`)
/// if configured, else the scheme (`X-Forwarded-Proto` if a proxy set it, else `wss` with TLS and
/// `ws` without) and the `Host` header; then the request's path and query.
pub fn signed_url(
    public_base: Option<&str>,
    forwarded_proto: Option<&str>,
    tls: bool,
    host: &str,
    path_and_query: &str,
) -> String {
    match public_base {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), path_and_query),
        None => {
            let scheme = match forwarded_proto.map(str::trim) {
                Some("https" | "wss") => "wss",
                Some("http" | "ws") => "ws",
                _ if tls => "wss",
                _ => "ws",
            };
            format!("{scheme}://{host}{path_and_query}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Python's `hmac`/`hashlib` (an independent implementation), generated by
    /// `scripts/gen_signature_vectors.py`; the first is the example from Twilio's security docs.
    /// (auth token, URL, POST parameters, expected signature)
    type Vector = (&'static str, &'static str, &'static [(&'static str, &'static str)], &'static str);

    const VECTORS: &[Vector] = &[
        (
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            &[
                ("CallSid", "CA1234567890ABCDE"),
                ("Caller", "+12349013030"),
                ("Digits", "1234"),
                ("From", "+12349013030"),
                ("To", "+18005551212"),
            ],
            include_str!("../../tests/fixtures/signature_vector_0.txt"),
        ),
        (
            "0123456789abcdef0123456789abcdef",
            "wss://bot.example.com/media?tenant=acme&lang=en",
            &[],
            include_str!("../../tests/fixtures/signature_vector_1.txt"),
        ),
    ];

    #[test]
    fn signatures_match_an_independent_implementation() {
        for (token, url, params, expected) in VECTORS {
            assert_eq!(twilio_signature(token, url, params), expected.trim(), "{url}");
        }
    }

    #[test]
    fn plivo_v3_matches_an_independent_implementation_and_accepts_any_listed_signature() {
        let expected = include_str!("../../tests/fixtures/plivo_signature_vector_0.txt").trim();
        let (token, nonce) = ("MAXXXXXXXXXXXXXXXXXX-token", "12345678901234567890");
        // The upgrade's URL as the server rebuilds it; the SDK signs it as https, query sorted.
        let url = "wss://bot.example.com/stream?b=2&a=1";
        assert_eq!(plivo_signature_v3(token, url, nonce), expected);
        let headers = |sigs: &'static str| {
            move |name: &str| match name {
                "x-plivo-signature-v3" => Some(sigs),
                "x-plivo-signature-v3-nonce" => Some("12345678901234567890"),
                _ => None,
            }
        };
        let listed: &'static str = Box::leak(format!("bm90IGl0, {expected}").into_boxed_str());
        assert!(RequestAuth::PlivoSignatureV3.check(token, url, headers(listed)));
        assert!(!RequestAuth::PlivoSignatureV3.check("another", url, headers(listed)));
        assert!(!RequestAuth::PlivoSignatureV3.check(token, url, headers("bm90IGl0")));
        assert!(!RequestAuth::PlivoSignatureV3.check(token, url, |_| None));
    }

    #[test]
    fn tokens_bearers_and_basic_credentials_must_match_exactly() {
        let only = |name: &'static str, value: &'static str| move |h: &str| (h == name).then_some(value);
        let telnyx = request_auth("telnyx").unwrap();
        assert!(telnyx.check("s3cret", "", only("x-telnyx-streaming-auth-token", "s3cret")));
        assert!(!telnyx.check("s3cret", "", only("x-telnyx-streaming-auth-token", "s3cre")));
        assert!(!telnyx.check("s3cret", "", only("authorization", "s3cret")));
        let bearer = request_auth("signalwire").unwrap();
        assert!(bearer.check("tok", "", only("authorization", "Bearer tok")));
        assert!(!bearer.check("tok", "", only("authorization", "Basic tok")));
        assert!(!bearer.check("tok", "", only("authorization", "Bearer tok2")));
        // `Basic` carries base64("user:password"): "agent:pa55" is "YWdlbnQ6cGE1NQ==".
        let basic = request_auth("exotel").unwrap();
        assert!(basic.check("agent:pa55", "", only("authorization", "Basic YWdlbnQ6cGE1NQ==")));
        assert!(!basic.check("agent:pa56", "", only("authorization", "Basic YWdlbnQ6cGE1NQ==")));
        assert_eq!(request_auth("audiosocket"), None);
    }

    #[test]
    fn validation_accepts_only_the_exact_url_and_token() {
        let (token, url, _, sig) = VECTORS[1];
        let sig = sig.trim();
        assert!(validate(token, url, sig));
        assert!(!validate(token, "wss://bot.example.com/media?tenant=acme&lang=fr", sig));
        assert!(!validate("another-token", url, sig));
        assert!(!validate(token, url, "not base64!"));
        assert!(!validate(token, url, ""));
    }

    #[test]
    fn the_signed_url_is_rebuilt_like_twilio_sees_it() {
        assert_eq!(signed_url(None, None, false, "h:8080", "/media?x=1"), "ws://h:8080/media?x=1");
        assert_eq!(
            signed_url(None, Some("https"), false, "bot.example.com", "/m"),
            "wss://bot.example.com/m"
        );
        assert_eq!(signed_url(None, None, true, "bot", "/m"), "wss://bot/m");
        assert_eq!(
            signed_url(Some("wss://pub.example.com/"), None, false, "internal:9000", "/m?a=b"),
            "wss://pub.example.com/m?a=b"
        );
    }
}
