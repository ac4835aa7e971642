//! How carriers authenticate their connection requests, checked on the WebSocket upgrade: each
//! dialect's scheme ([`request_auth`]), and Twilio's `X-Twilio-Signature`, computed (a client,
//! such as a caller simulator) and validated (a server). Behind the `request-auth` feature.
//!
//! Vonage can sign the upgrade with a JWT ([`RequestAuth::VonageJwt`], checked by
//! [`verify_vonage_jwt`]): HS256 keyed with the account's signature secret, in
//! `Authorization: Bearer <jwt>`.
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
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// `Authorization: Bearer <jwt>`: Vonage's own authorization (`{"type": "vonage"}` on the
    /// endpoint), a JWT signed HS256 with the account's signature secret. See
    /// [`verify_vonage_jwt`] for what is checked. Not the default for `vonage` (its custom value
    /// is): a server chooses it per route.
    VonageJwt,
    /// `Authorization: Basic base64(<secret>)`, the secret being `user:password` (Exotel,
    /// jambonz).
    Basic,
}

/// How the carrier of the dialect named `dialect` authenticates its connection requests, if it
/// does in a way a server can check.
pub fn request_auth(dialect: &str) -> Option<RequestAuth> {
    Some(match super::dialect_name(dialect) {
        "twilio" => RequestAuth::TwilioSignature,
        "plivo" => RequestAuth::PlivoSignatureV3,
        "telnyx" => RequestAuth::Token { header: "x-telnyx-streaming-auth-token" },
        "signalwire" | "vonage" => RequestAuth::Bearer,
        "exotel" | "jambonz" => RequestAuth::Basic,
        _ => return None,
    })
}

/// Why a request was not authenticated (see [`RequestAuth::verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// The credentials the scheme needs were not sent at all (no such header).
    Missing,
    /// Credentials were sent but do not match the secret (or are malformed, or use another
    /// scheme or algorithm).
    Invalid,
    /// A correctly signed JWT outside its validity window (`exp`, `nbf`, `iat`): often a clock
    /// out of step.
    Expired,
}

impl RequestAuth {
    /// Whether a request to `url` (see [`signed_url`]) whose headers `header` looks up (by lower
    /// case name) is authenticated by `secret`.
    pub fn check<'h>(self, secret: &str, url: &str, header: impl Fn(&str) -> Option<&'h str>) -> bool {
        self.verify(secret, url, header).is_ok()
    }

    /// As [`RequestAuth::check`], saying why a request is refused.
    pub fn verify<'h>(
        self,
        secret: &str,
        url: &str,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Result<(), AuthFailure> {
        let matches = |ok: bool| if ok { Ok(()) } else { Err(AuthFailure::Invalid) };
        match self {
            Self::TwilioSignature => {
                let sig = header("x-twilio-signature").ok_or(AuthFailure::Missing)?;
                matches(validate(secret, url, sig))
            }
            Self::PlivoSignatureV3 => {
                // The main account's signature comes in a header of its own, so a route keyed
                // with the main account's token takes its subaccounts' calls too.
                let signed = header("x-plivo-signature-v3");
                let by_main = header("x-plivo-signature-ma-v3");
                let nonce = header("x-plivo-signature-v3-nonce");
                let (Some(nonce), true) = (nonce, signed.is_some() || by_main.is_some()) else {
                    return Err(AuthFailure::Missing);
                };
                let expected = plivo_signature_v3(secret, url, nonce);
                // Several signatures may be sent (one per key): any may match.
                let sigs = signed.into_iter().chain(by_main).flat_map(|sigs| sigs.split(','));
                matches(
                    sigs.fold(false, |ok, sig| {
                        ok | constant_time_eq(sig.trim().as_bytes(), expected.as_bytes())
                    }),
                )
            }
            Self::Token { header: name } => {
                let value = header(name).ok_or(AuthFailure::Missing)?;
                matches(constant_time_eq(value.as_bytes(), secret.as_bytes()))
            }
            Self::Bearer => {
                let value = header("authorization").ok_or(AuthFailure::Missing)?;
                matches(
                    value
                        .strip_prefix("Bearer ")
                        .is_some_and(|v| constant_time_eq(v.trim().as_bytes(), secret.as_bytes())),
                )
            }
            Self::VonageJwt => {
                let value = header("authorization").ok_or(AuthFailure::Missing)?;
                let jwt = value.strip_prefix("Bearer ").ok_or(AuthFailure::Invalid)?;
                verify_vonage_jwt(secret, jwt.trim())
            }
            Self::Basic => {
                let value = header("authorization").ok_or(AuthFailure::Missing)?;
                matches(value.strip_prefix("Basic ").is_some_and(|v| {
                    let expected = STANDARD.encode(secret);
                    constant_time_eq(v.trim().as_bytes(), expected.as_bytes())
                }))
            }
        }
    }
}

/// Clock skew allowed between the carrier and this host when checking a JWT's times.
pub const JWT_LEEWAY_S: u64 = 60;

/// Oldest a Vonage JWT without `exp` may be (from its `iat`): without this, a captured token
/// would open connections forever.
pub const VONAGE_JWT_MAX_AGE_S: u64 = 300;

/// The claims read from Vonage's JWT besides those `jsonwebtoken` checks itself.
#[derive(serde::Deserialize)]
struct VonageClaims {
    /// Issued at (seconds since the epoch): required, a number.
    iat: u64,
    /// Expiry: `jsonwebtoken` checks it; here only whether there is one.
    #[serde(default)]
    exp: Option<u64>,
}

/// Whether `jwt` is a token Vonage signed with the account's signature `secret`: HS256 only
/// (`alg: none` and every other algorithm are refused, whatever the header says), the signature
/// checked, `exp` and `nbf` honoured when present (a claim of the wrong type is refused), and
/// `iat` required, not in the future, and, in a token without `exp`, at most
/// [`VONAGE_JWT_MAX_AGE_S`] old; [`JWT_LEEWAY_S`] of clock skew allowed each way. Vonage's
/// `api_key` and `payload_hash` claims are not used: the secret is the route's, and the upgrade
/// has no body to hash.
#[allow(clippy::disallowed_methods, reason = "a token's age is wall-clock time, checked at the upgrade")]
pub fn verify_vonage_jwt(secret: &str, jwt: &str) -> Result<(), AuthFailure> {
    use jsonwebtoken::errors::ErrorKind;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // Vonage's exact claim set on the upgrade is not documented: `exp` is checked when present
    // (the `iat` age below bounds a token without it), no audience is expected.
    validation.required_spec_claims.clear();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.leeway = JWT_LEEWAY_S;
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let claims = match jsonwebtoken::decode::<VonageClaims>(jwt, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            });
        }
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if claims.iat > now.saturating_add(JWT_LEEWAY_S) {
        return Err(AuthFailure::Expired);
    }
    if claims.exp.is_none() && now.saturating_sub(claims.iat) > VONAGE_JWT_MAX_AGE_S + JWT_LEEWAY_S {
        return Err(AuthFailure::Expired);
    }
    Ok(())
}

/// Equality that takes the same time wherever the inputs differ (their lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// Plivo's V3 signature of a request to `url` with `nonce`: its SDK's algorithm (the scheme
/// `http`/`https`; the query read as a form, so `%XX` and `+` decoded and a bare key given an
/// empty value, then sorted by key and each key's values sorted, as `k=v` joined by `&`; then
/// `"." + nonce`; HMAC-SHA256 keyed with the auth token).
pub fn plivo_signature_v3(auth_token: &str, url: &str, nonce: &str) -> String {
    let url = url.replacen("wss://", "https://", 1).replacen("ws://", "http://", 1);
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut params: Vec<_> = form_urlencoded::parse(query.as_bytes()).collect();
    params.sort();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(base.as_bytes());
    for (i, (key, value)) in params.iter().enumerate() {
        mac.update(if i == 0 { b"?" } else { b"&" });
        mac.update(key.as_bytes());
        mac.update(b"=");
        mac.update(value.as_bytes());
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
/// if configured, else the scheme (`X-Forwarded-Proto` if a proxy set it: its first entry, the
/// scheme the carrier used, when proxies in a chain each appended theirs; else `wss` with TLS and
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
            let first = forwarded_proto.and_then(|p| p.split(',').next()).map(str::trim);
            let scheme = match first.map(str::to_ascii_lowercase).as_deref() {
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
#[allow(clippy::disallowed_methods, reason = "tokens are minted at the wall clock's time")]
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

    /// The SDK reads the query as a form (Python's `parse_qs`): escapes and `+` decoded, a bare
    /// key kept with an empty value, repeated keys' values sorted. The vector was made with
    /// `parse_qs` itself (scripts/gen_signature_vectors.py).
    #[test]
    fn plivo_v3_signs_the_query_decoded_as_its_sdk_reads_it() {
        let expected = include_str!("../../tests/fixtures/plivo_signature_vector_1.txt").trim();
        let (token, nonce) = ("MAXXXXXXXXXXXXXXXXXX-token", "98765432109876543210");
        let url = "wss://bot.example.com/plivo?caller=%2B14155550100&b=2&b=1&name=J+Doe&flag";
        assert_eq!(plivo_signature_v3(token, url, nonce), expected);
        // The main account's header alone is accepted too.
        let headers = |name: &str| match name {
            "x-plivo-signature-ma-v3" => Some(expected),
            "x-plivo-signature-v3-nonce" => Some(nonce),
            _ => None,
        };
        assert!(RequestAuth::PlivoSignatureV3.check(token, url, headers));
        let no_nonce = |name: &str| (name == "x-plivo-signature-ma-v3").then_some(expected);
        assert_eq!(RequestAuth::PlivoSignatureV3.verify(token, url, no_nonce), Err(AuthFailure::Missing));
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

    /// A JWT built by hand (not with the crate under test): base64url of the header and claims
    /// as given, signed with HMAC-SHA256 or HMAC-SHA512 as `alg` says, unsigned for `none`.
    fn jwt(secret: &str, header: &str, claims: &str) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
        let signature = if header.contains("HS512") {
            let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        } else if header.contains("none") {
            String::new()
        } else {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        };
        format!("{signing_input}.{signature}")
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    #[test]
    fn vonage_jwts_need_the_secret_hs256_and_a_current_validity_window() {
        let secret = "vonage-signature-secret";
        let t = now();
        let fresh = format!(r#"{{"iat":{t},"exp":{},"api_key":"abc123","jti":"x"}}"#, t + 300);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &fresh)), Ok(()));
        assert_eq!(verify_vonage_jwt("another", &jwt(secret, HS256, &fresh)), Err(AuthFailure::Invalid));
        // A changed claim breaks the signature.
        let signed = jwt(secret, HS256, &fresh);
        let forged_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"iat":{t},"exp":{}}}"#, t + 99_999));
        let mut parts: Vec<&str> = signed.split('.').collect();
        parts[1] = &forged_claims;
        assert_eq!(verify_vonage_jwt(secret, &parts.join(".")), Err(AuthFailure::Invalid));

        let expired = format!(r#"{{"iat":{},"exp":{}}}"#, t - 900, t - 600);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &expired)), Err(AuthFailure::Expired));
        let not_yet = format!(r#"{{"iat":{t},"nbf":{},"exp":{}}}"#, t + 600, t + 900);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &not_yet)), Err(AuthFailure::Expired));
        let from_the_future = format!(r#"{{"iat":{}}}"#, t + 600);
        assert_eq!(
            verify_vonage_jwt(secret, &jwt(secret, HS256, &from_the_future)),
            Err(AuthFailure::Expired)
        );
        // Without `exp`, `iat` bounds the token's life.
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &format!(r#"{{"iat":{t}}}"#))), Ok(()));
        let old = format!(r#"{{"iat":{}}}"#, t - 3600);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &old)), Err(AuthFailure::Expired));

        // Claims of the wrong type, or missing `iat`, are refused rather than skipped.
        let string_exp = format!(r#"{{"iat":{t},"exp":"never"}}"#);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &string_exp)), Err(AuthFailure::Invalid));
        let string_nbf = format!(r#"{{"iat":{t},"nbf":"{}"}}"#, t + 9999);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &string_nbf)), Err(AuthFailure::Invalid));
        let no_iat = format!(r#"{{"exp":{}}}"#, t + 300);
        assert_eq!(verify_vonage_jwt(secret, &jwt(secret, HS256, &no_iat)), Err(AuthFailure::Invalid));

        // Only HS256: not `none`, not another HMAC.
        let none = jwt(secret, r#"{"alg":"none","typ":"JWT"}"#, &fresh);
        assert_eq!(verify_vonage_jwt(secret, &none), Err(AuthFailure::Invalid));
        let hs512 = jwt(secret, r#"{"alg":"HS512","typ":"JWT"}"#, &fresh);
        assert_eq!(verify_vonage_jwt(secret, &hs512), Err(AuthFailure::Invalid));
        assert_eq!(verify_vonage_jwt(secret, "not.a.jwt"), Err(AuthFailure::Invalid));
        assert_eq!(verify_vonage_jwt(secret, ""), Err(AuthFailure::Invalid));
    }

    #[test]
    fn refusals_say_whether_credentials_were_missing_or_wrong() {
        let secret = "vonage-signature-secret";
        let token = jwt(secret, HS256, &format!(r#"{{"iat":{}}}"#, now()));
        let bearer: &'static str = Box::leak(format!("Bearer {token}").into_boxed_str());
        let only = |name: &'static str, value: &'static str| move |h: &str| (h == name).then_some(value);
        let jwt_auth = RequestAuth::VonageJwt;
        assert_eq!(jwt_auth.verify(secret, "", only("authorization", bearer)), Ok(()));
        assert_eq!(jwt_auth.verify(secret, "", |_| None), Err(AuthFailure::Missing));
        assert_eq!(
            jwt_auth.verify(secret, "", only("authorization", "Basic eDp5")),
            Err(AuthFailure::Invalid)
        );
        // The custom bearer scheme takes the JWT as an opaque value, which is not the secret.
        assert_eq!(
            RequestAuth::Bearer.verify(secret, "", only("authorization", bearer)),
            Err(AuthFailure::Invalid)
        );
        for auth in ["twilio", "plivo", "telnyx", "signalwire", "exotel"].map(|d| request_auth(d).unwrap()) {
            assert_eq!(auth.verify("s", "ws://h/", |_| None), Err(AuthFailure::Missing), "{auth:?}");
        }
        assert_eq!(
            RequestAuth::TwilioSignature.verify("s", "ws://h/", only("x-twilio-signature", "AAAA")),
            Err(AuthFailure::Invalid)
        );
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
        // Behind two proxies each appends its own: the first is what the carrier used.
        assert_eq!(signed_url(None, Some("https, http"), false, "bot", "/m"), "wss://bot/m");
        assert_eq!(signed_url(None, Some("HTTPS"), false, "bot", "/m"), "wss://bot/m");
        assert_eq!(signed_url(None, Some("http,https"), true, "bot", "/m"), "ws://bot/m");
        assert_eq!(
            signed_url(Some("wss://pub.example.com/"), None, false, "internal:9000", "/m?a=b"),
            "wss://pub.example.com/m?a=b"
        );
    }
}
