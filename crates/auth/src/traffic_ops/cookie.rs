//! Traffic Ops' `mojolicious` session cookie (`traffic_ops_golang/tocookie/cookie.go`), made
//! and read byte for byte as Traffic Ops does, so that a cookie either side issues is
//! accepted by the other.
//!
//! The value is `B64--SIG`: `B64` is the unpadded base64url of the JSON
//! `{"auth_data":"<user>","expires":<unix seconds>,"by":"trafficcontrol-go-tocookie"}`, and
//! `SIG` the lowercase hex HMAC-SHA1 of the text `B64` under the secret (`secrets[0]` of
//! cdn.conf). Reading takes the payload before the *first* `-`, the signed text before the
//! *last* `-` less one character (the other `-` of `--`), and the signature after the last
//! `-`; it checks the signature (in constant time) before it reads the JSON.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

/// The cookie's name.
pub const NAME: &str = "mojolicious";
/// What Traffic Ops writes in the `by` field (read back, it is ignored).
pub const GENERATED_BY: &str = "trafficcontrol-go-tocookie";

/// Go's `base64.RawURLEncoding`: no padding written, padding refused when read, and (Go's
/// decoder not being strict) non-zero trailing bits accepted.
const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

type HmacSha1 = Hmac<Sha1>;

/// What a valid cookie says: who, and until when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// The username (Traffic Ops' `auth_data`). May be empty: Traffic Ops then answers 401.
    pub auth_data: String,
    /// The expiry, Unix seconds; the cookie is good while `expires >= now`.
    pub expires: i64,
}

/// Why a cookie value is refused. [`CookieError::unauthorized_text`] is the text of Traffic
/// Ops' 401 answer for each; `Display` is the longer text for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// The value is empty (Traffic Ops treats it as no cookie at all).
    #[error("the cookie is empty")]
    Empty,
    /// The value has no `-` at all.
    #[error("error parsing cookie: malformed cookie '{0}' - no dashes")]
    NoDashes(String),
    /// The only dash is the first character, so there is no signed text. Traffic Ops panics
    /// here (its slice `[:lastDash-1]` goes out of range) and answers 500; we refuse it as
    /// an undecodable cookie.
    #[error("error parsing cookie: no signed text before the signature")]
    NoSignedText,
    /// The payload is not unpadded base64url.
    #[error("error parsing cookie: error decoding base64 data")]
    Base64,
    /// The signature is not hex.
    #[error("error parsing cookie: error decoding signature")]
    Hex,
    /// The signature does not match the secret.
    #[error("bad signature - unauthorized, please log in")]
    BadSignature,
    /// The signed payload is not the JSON Traffic Ops writes.
    #[error("error parsing cookie: error decoding base64 text to JSON: {0}")]
    Json(String),
    /// `expires` is before now.
    #[error("signature expired - unauthorized, please log in")]
    Expired,
}

impl CookieError {
    /// The text Traffic Ops shows in its 401 alert for this cookie.
    pub fn unauthorized_text(&self) -> String {
        match self {
            CookieError::Empty => super::UNAUTHORIZED_PLEASE_LOG_IN.to_owned(),
            // Traffic Ops' "user errors" are shown as they are.
            CookieError::NoDashes(_) | CookieError::BadSignature | CookieError::Expired => {
                self.to_string()
            }
            // Its "system errors" are logged, and the user reads the status text.
            CookieError::NoSignedText
            | CookieError::Base64
            | CookieError::Hex
            | CookieError::Json(_) => "Unauthorized".to_owned(),
        }
    }
}

/// The cookie value for `user` expiring at `expires_unix`, signed with `secret`.
pub fn make(user: &str, expires_unix: i64, secret: &str) -> String {
    let payload = RAW_URL.encode(payload_json(user, expires_unix));
    let signature = hex_lower(&hmac_sha1(secret.as_bytes(), payload.as_bytes()));
    format!("{payload}--{signature}")
}

/// Reads and checks a cookie value at `now` (Unix seconds), in Traffic Ops' order: dashes,
/// base64, hex, signature, JSON, expiry. The cookie is expired when `expires < now` (Go
/// computes `expires - now < 0` in wrapping int64, so a signed `expires` near `i64::MIN`
/// would never expire there; here it has expired).
pub fn parse(value: &str, secret: &str, now: i64) -> Result<Cookie, CookieError> {
    if value.is_empty() {
        return Err(CookieError::Empty);
    }
    let bytes = value.as_bytes();
    let (Some(first_dash), Some(last_dash)) = (value.find('-'), value.rfind('-')) else {
        return Err(CookieError::NoDashes(value.to_owned()));
    };
    let json = RAW_URL
        .decode(&bytes[..first_dash])
        .map_err(|_| CookieError::Base64)?;
    // The signature covers the text before `--`: everything before the last dash, less the
    // byte before it. Slicing bytes, not the str, so a multi-byte character cannot panic.
    let signed = match last_dash.checked_sub(1) {
        Some(end) => &bytes[..end],
        None => return Err(CookieError::NoSignedText),
    };
    let signature = hex_decode(&bytes[last_dash + 1..]).ok_or(CookieError::Hex)?;
    let mut mac =
        HmacSha1::new_from_slice(secret.as_bytes()).map_err(|_| CookieError::BadSignature)?;
    mac.update(signed);
    mac.verify_slice(&signature)
        .map_err(|_| CookieError::BadSignature)?;
    let json_error = |e: serde_json::Error| CookieError::Json(e.to_string());
    // Through a `Value`, so that a top-level array is refused and a repeated key is taken
    // last, as Go does (serde would fill a struct from an array, and refuse a repeated key).
    let payload = match serde_json::from_slice(&json).map_err(json_error)? {
        serde_json::Value::Null => Payload::default(),
        object @ serde_json::Value::Object(_) => {
            serde_json::from_value(object).map_err(json_error)?
        }
        _ => return Err(CookieError::Json("not a JSON object".into())),
    };
    let cookie = Cookie {
        auth_data: payload.auth_data.unwrap_or_default(),
        expires: payload.expires.unwrap_or_default(),
    };
    if cookie.expires < now {
        return Err(CookieError::Expired);
    }
    Ok(cookie)
}

/// The JSON as Go's `encoding/json` reads it into Traffic Ops' struct: unknown fields
/// ignored, missing or `null` fields left at zero (an `expires` of 0 has long passed), a
/// top-level `null` leaves everything at zero, `by` must be a string if present but is
/// otherwise ignored. Unlike Go, field names match exactly (Go also matches them
/// case-insensitively): only a value signed with the secret gets here, and neither Traffic
/// Ops nor asyncstatus signs other spellings.
#[derive(Debug, Default, Deserialize)]
struct Payload {
    #[serde(default)]
    auth_data: Option<String>,
    #[serde(default)]
    expires: Option<i64>,
    /// Read only to refuse a non-string, as Go does.
    #[serde(default, rename = "by")]
    _by: Option<String>,
}

/// The payload JSON exactly as Go's `json.Marshal` writes Traffic Ops' struct: fields in
/// struct order (`auth_data`, `expires`, `by`), no spaces, the integer in decimal.
fn payload_json(user: &str, expires_unix: i64) -> String {
    let mut out = String::with_capacity(user.len() + 80);
    out.push_str("{\"auth_data\":");
    push_go_json_string(&mut out, user);
    out.push_str(",\"expires\":");
    out.push_str(&expires_unix.to_string());
    out.push_str(",\"by\":");
    push_go_json_string(&mut out, GENERATED_BY);
    out.push('}');
    out
}

/// A JSON string as Go's `encoding/json` (1.22 and later) escapes it with its default HTML
/// escaping: `"` and `\` with a backslash; `\b \f \n \r \t` by name; other control
/// characters and `<`, `>`, `&` as `\u00xx` (lowercase hex); U+2028 and U+2029 as `\u2028`
/// and `\u2029`; everything else, non-ASCII included, as it is.
fn push_go_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(char::from(HEX[b >> 4]));
                out.push(char::from(HEX[b & 0xf]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; the error branch cannot happen.
    match HmacSha1::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Go's `hex.DecodeString`: an even number of digits, either case.
fn hex_decode(text: &[u8]) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() % 2 != 0 {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "cdn.conf secrets[0] for tests";

    /// Known vectors, computed once outside this crate with Python's standard library and
    /// hard-coded here:
    /// ```text
    /// python3 -c 'import hmac,hashlib,base64,json,sys; u,e,s=sys.argv[1],int(sys.argv[2]),sys.argv[3]
    /// j="{\"auth_data\":%s,\"expires\":%d,\"by\":\"trafficcontrol-go-tocookie\"}"%(json.dumps(u,ensure_ascii=False),e)
    /// b=base64.urlsafe_b64encode(j.encode()).rstrip(b"=").decode()
    /// print(b+"--"+hmac.new(s.encode(),b.encode(),hashlib.sha1).hexdigest())' admin 1700000000 'cdn.conf secrets[0] for tests'
    /// ```
    /// (for the last vector, `<`, `>`, `&`, U+2028 and U+2029 were then replaced in `j` by
    /// their `\u` escapes, as Go writes them).
    const VECTORS: &[(&str, i64, &str)] = &[
        ("admin", 1_700_000_000, "eyJhdXRoX2RhdGEiOiJhZG1pbiIsImV4cGlyZXMiOjE3MDAwMDAwMDAsImJ5IjoidHJhZmZpY2NvbnRyb2wtZ28tdG9jb29raWUifQ--b0663f56e8b8dc750e1bef6b2ceeccb66e9a56db"),
        ("operator-7", 4_102_444_800, "eyJhdXRoX2RhdGEiOiJvcGVyYXRvci03IiwiZXhwaXJlcyI6NDEwMjQ0NDgwMCwiYnkiOiJ0cmFmZmljY29udHJvbC1nby10b2Nvb2tpZSJ9--2f601dcf88d1ea952f01c94bee52d2d70a5a91bf"),
        ("", 0, "eyJhdXRoX2RhdGEiOiIiLCJleHBpcmVzIjowLCJieSI6InRyYWZmaWNjb250cm9sLWdvLXRvY29va2llIn0--aa81bfc35884c03d851fcfefbe77593b9a0b87d8"),
        ("jörg", 1_234_567_890, "eyJhdXRoX2RhdGEiOiJqw7ZyZyIsImV4cGlyZXMiOjEyMzQ1Njc4OTAsImJ5IjoidHJhZmZpY2NvbnRyb2wtZ28tdG9jb29raWUifQ--bbc5ba495ef1f257930a3806c8dba0211a05d606"),
        ("o'<b>&\"\\\u{1}\u{8}\u{c}\n\r\t\u{7f}\u{2028}\u{2029}é", -5, "eyJhdXRoX2RhdGEiOiJvJ1x1MDAzY2JcdTAwM2VcdTAwMjZcIlxcXHUwMDAxXGJcZlxuXHJcdH9cdTIwMjhcdTIwMjnDqSIsImV4cGlyZXMiOi01LCJieSI6InRyYWZmaWNjb250cm9sLWdvLXRvY29va2llIn0--0138dc88813e121441950e0ace298b2580154d1b"),
    ];

    #[test]
    fn made_cookies_equal_the_known_vectors() {
        for (user, expires, expected) in VECTORS {
            assert_eq!(make(user, *expires, SECRET), *expected, "{user:?}");
        }
    }

    #[test]
    fn the_known_vectors_parse_back() {
        for (user, expires, value) in VECTORS {
            assert_eq!(
                parse(value, SECRET, *expires),
                Ok(Cookie {
                    auth_data: (*user).to_owned(),
                    expires: *expires
                }),
                "{user:?}"
            );
        }
    }

    #[test]
    fn the_payload_is_go_json_in_struct_order() {
        assert_eq!(
            payload_json("admin", 1_700_000_000),
            r#"{"auth_data":"admin","expires":1700000000,"by":"trafficcontrol-go-tocookie"}"#
        );
        assert_eq!(
            payload_json("a<b>&\"\\\u{0}\u{1f}\u{7f}\u{2028}é", -1),
            "{\"auth_data\":\"a\\u003cb\\u003e\\u0026\\\"\\\\\\u0000\\u001f\u{7f}\\u2028é\",\"expires\":-1,\"by\":\"trafficcontrol-go-tocookie\"}"
        );
        assert_eq!(
            payload_json("x", i64::MIN),
            r#"{"auth_data":"x","expires":-9223372036854775808,"by":"trafficcontrol-go-tocookie"}"#
        );
    }

    #[test]
    fn expiry_is_inclusive_of_now() {
        let value = make("admin", 1000, SECRET);
        assert!(parse(&value, SECRET, 999).is_ok());
        assert!(parse(&value, SECRET, 1000).is_ok());
        assert_eq!(parse(&value, SECRET, 1001), Err(CookieError::Expired));
    }

    #[test]
    fn another_secret_is_a_bad_signature() {
        let value = make("admin", i64::MAX, SECRET);
        assert_eq!(
            parse(&value, "secrets[1]", 0),
            Err(CookieError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_payload_or_signature_is_a_bad_signature() {
        let value = make("admin", i64::MAX, SECRET);
        let (payload, signature) = value.split_once("--").unwrap();
        let forged = format!(
            "{}--{signature}",
            RAW_URL.encode(payload_json("root", i64::MAX))
        );
        assert_eq!(parse(&forged, SECRET, 0), Err(CookieError::BadSignature));
        let mut flipped = signature.to_owned().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = format!("{payload}--{}", String::from_utf8(flipped).unwrap());
        assert_eq!(parse(&flipped, SECRET, 0), Err(CookieError::BadSignature));
        // A truncated signature is still hex, but of the wrong length.
        let short = &value[..value.len() - 2];
        assert_eq!(parse(short, SECRET, 0), Err(CookieError::BadSignature));
        let none = format!("{payload}--");
        assert_eq!(parse(&none, SECRET, 0), Err(CookieError::BadSignature));
    }

    #[test]
    fn an_uppercase_signature_is_accepted_as_go_decodes_hex() {
        let value = make("admin", i64::MAX, SECRET);
        let (payload, signature) = value.split_once("--").unwrap();
        let upper = format!("{payload}--{}", signature.to_ascii_uppercase());
        assert_eq!(
            parse(&upper, SECRET, 0).map(|c| c.auth_data),
            Ok("admin".into())
        );
    }

    /// The three cuts are Traffic Ops': payload before the first dash, signed text before
    /// the last dash less one byte, signature after the last dash.
    #[test]
    fn the_value_is_cut_where_traffic_ops_cuts_it() {
        let payload = RAW_URL.encode(payload_json("admin", i64::MAX));
        // A single dash: the signed text is the payload less its last character.
        let signed = &payload[..payload.len() - 1];
        let single = format!(
            "{payload}-{}",
            hex_lower(&hmac_sha1(SECRET.as_bytes(), signed.as_bytes()))
        );
        assert_eq!(
            parse(&single, SECRET, 0).map(|c| c.auth_data),
            Ok("admin".into())
        );
        // Text between the payload and the signature is signed but not read.
        let middle = format!("{payload}-junk-");
        let signed = &middle[..middle.len() - 2];
        let value = format!(
            "{middle}{}",
            hex_lower(&hmac_sha1(SECRET.as_bytes(), signed.as_bytes()))
        );
        assert_eq!(
            parse(&value, SECRET, 0).map(|c| c.auth_data),
            Ok("admin".into())
        );
    }

    #[test]
    fn each_malformed_value_has_traffic_ops_text() {
        let cases: &[(&str, CookieError, &str)] = &[
            ("", CookieError::Empty, "unauthorized, please log in."),
            (
                "nodashesatall",
                CookieError::NoDashes("nodashesatall".into()),
                "error parsing cookie: malformed cookie 'nodashesatall' - no dashes",
            ),
            ("-", CookieError::NoSignedText, "Unauthorized"),
            ("-abc", CookieError::NoSignedText, "Unauthorized"),
            ("é-", CookieError::Base64, "Unauthorized"),
            ("ab=c--00", CookieError::Base64, "Unauthorized"),
            ("eyJ9--zz", CookieError::Hex, "Unauthorized"),
            ("eyJ9--abc", CookieError::Hex, "Unauthorized"),
            (
                "eyJ9--00",
                CookieError::BadSignature,
                "bad signature - unauthorized, please log in",
            ),
        ];
        for (value, error, text) in cases {
            let got = parse(value, SECRET, 0);
            assert_eq!(got.as_ref(), Err(error), "{value:?}");
            assert_eq!(error.unauthorized_text(), *text, "{value:?}");
        }
        assert_eq!(
            CookieError::Expired.unauthorized_text(),
            "signature expired - unauthorized, please log in"
        );
    }

    /// A value signed with the secret whose JSON is not Traffic Ops' is refused after the
    /// signature check, as `Unauthorized`.
    fn signed(json: &str) -> String {
        let payload = RAW_URL.encode(json);
        let signature = hex_lower(&hmac_sha1(SECRET.as_bytes(), payload.as_bytes()));
        format!("{payload}--{signature}")
    }

    #[test]
    fn signed_json_is_read_as_go_reads_it() {
        for bad in [
            "",
            "{",
            "[]",
            "\"x\"",
            r#"{"auth_data":1}"#,
            r#"{"expires":1.5}"#,
            r#"{"expires":"9"}"#,
            r#"{"expires":1e3}"#,
            r#"{"by":1}"#,
        ] {
            match parse(&signed(bad), SECRET, 0) {
                Err(e @ CookieError::Json(_)) => assert_eq!(e.unauthorized_text(), "Unauthorized"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // Unknown fields are ignored, `by` included; missing ones are zero.
        assert_eq!(
            parse(
                &signed(r#"{"expires":5,"auth_data":"ops","by":"someone","x":[1]}"#),
                SECRET,
                5
            ),
            Ok(Cookie {
                auth_data: "ops".into(),
                expires: 5
            })
        );
        assert_eq!(
            parse(&signed(r#"{"expires":5}"#), SECRET, 0),
            Ok(Cookie {
                auth_data: String::new(),
                expires: 5
            })
        );
        assert_eq!(
            parse(&signed(r#"{"auth_data":null,"expires":null}"#), SECRET, 0),
            Ok(Cookie {
                auth_data: String::new(),
                expires: 0
            })
        );
        assert_eq!(
            parse(
                &signed(r#"{"auth_data":"a","expires":9,"auth_data":"b"}"#),
                SECRET,
                0
            ),
            Ok(Cookie {
                auth_data: "b".into(),
                expires: 9
            })
        );
        assert_eq!(parse(&signed("null"), SECRET, 1), Err(CookieError::Expired));
        assert_eq!(parse(&signed("{}"), SECRET, 1), Err(CookieError::Expired));
    }

    #[test]
    fn padding_is_refused_but_loose_trailing_bits_are_not() {
        // `{}` is "e30"; "e31" differs only in the two bits past the data, which Go ignores.
        assert_eq!(RAW_URL.decode("e30").unwrap(), b"{}");
        assert_eq!(RAW_URL.decode("e31").unwrap(), b"{}");
        assert!(RAW_URL.decode("e30=").is_err());
    }

    #[test]
    fn hex_is_go_hex() {
        assert_eq!(hex_decode(b""), Some(vec![]));
        assert_eq!(hex_decode(b"00ffA0"), Some(vec![0, 255, 160]));
        assert_eq!(hex_decode(b"0"), None);
        assert_eq!(hex_decode(b"0g"), None);
        assert_eq!(hex_lower(&[0, 255, 160]), "00ffa0");
    }
}
