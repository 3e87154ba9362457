//! Password hashes as Traffic Ops stores them in `tm_user.local_passwd`
//! (`traffic_ops_golang/auth/authenticate.go`, `auth/authorize.go`):
//! `SCRYPT:N:r:p:<salt>:<key>`, standard padded base64, `N` written out (16384), r = 8,
//! p = 1, a 64-byte salt and a 64-byte key. A stored value that is the lowercase hex SHA-1 of
//! the password is also accepted, as Traffic Ops still does for old accounts.
//!
//! # Bounded cost
//! Traffic Ops derives with whatever N, r and p the stored value names. A hostile or
//! corrupted row could name N = 2³⁰ and make one login allocate 128·N·r bytes (here 1 TiB)
//! and run for hours: a denial of service by anyone who can write one user row, or who can
//! log in as that user over and over. So a stored value is refused (an error, never a
//! derivation) unless N is a power of two in 2..=2²⁰, 1 ≤ r ≤ 16, 1 ≤ p ≤ 4, *and* together
//! they stay within what [`crate::password`] allows: memory 128·N·r ≤ 64 MiB and work
//! N·r·p ≤ 4 × Traffic Ops' own (16384·8·1). Traffic Ops only ever writes 16384:8:1, so
//! nothing it made is refused. The scrypt crate also requires N < 2^(16·r) (RFC 7914), which
//! Go's does not check: a value such as 65536:1:1 is an error here.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use rand::RngCore;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Traffic Ops' parameters, the ones [`hash_traffic_ops_password`] writes.
const N: u64 = 16384;
const R: u32 = 8;
const P: u32 = 1;
/// Traffic Ops' key length, which verification always derives, and its salt length.
const KEY_LEN: usize = 64;
const SALT_LEN: usize = 64;

const MAX_N: u64 = 1 << 20;
const MAX_R: u32 = 16;
const MAX_P: u32 = 4;

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits accepted.
const STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical)
        .with_decode_allow_trailing_bits(true),
);

/// Why a stored value can match no password. The login answer stays Traffic Ops'
/// `Invalid username or password.`; this is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    /// Fewer than six `:`-separated fields (Traffic Ops panics here and answers 500).
    #[error("stored password hash has {0} fields, SCRYPT:N:r:p:salt:key needs 6")]
    TooFewFields(usize),
    /// The first field is not `SCRYPT` (and the value is no legacy SHA-1 either).
    #[error("stored password hash is neither SCRYPT nor a hex SHA-1")]
    Scheme,
    /// N, r or p is not a number, or N is not a power of two above 1, or r or p is 0.
    #[error("stored password hash has an invalid {0}")]
    Parameter(&'static str),
    /// The parameters would cost more than this service allows (see the module doc).
    #[error("stored password hash asks for too costly a derivation ({0})")]
    TooCostly(String),
    /// The salt is not padded standard base64, or empty.
    #[error("stored password hash has an invalid salt")]
    Salt,
    /// The key is not padded standard base64 of 64 bytes (no other length can match).
    #[error("stored password hash has an invalid key")]
    Key,
    /// The scrypt crate refused the parameters.
    #[error("scrypt: {0}")]
    Scrypt(String),
}

/// A verified-usable stored hash.
struct Stored {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

/// Whether `password` matches the `stored` value, in Traffic Ops' way: a SCRYPT hash is
/// derived again with its own N, r, p and salt (key length 64) and compared in constant time;
/// a stored lowercase hex SHA-1 of the password also matches. `Err` when the stored value
/// can match nothing (malformed, or too costly to try: see the module doc); the caller
/// answers that like a wrong password.
pub fn verify_traffic_ops_password(
    stored: &str,
    password: &str,
) -> Result<bool, PasswordHashError> {
    let sha1 = hex_sha1(password);
    if bool::from(stored.as_bytes().ct_eq(sha1.as_bytes())) {
        return Ok(true);
    }
    if is_hex_sha1(stored) {
        return Ok(false);
    }
    let stored = parse(stored)?;
    let mut derived = [0u8; KEY_LEN];
    derive(
        password,
        &stored.salt,
        stored.log_n,
        stored.r,
        stored.p,
        &mut derived,
    )?;
    Ok(bool::from(derived.ct_eq(stored.key.as_slice())))
}

/// A new hash of `password` in Traffic Ops' format (16384:8:1, a random 64-byte salt), as
/// Traffic Ops' `DerivePassword` writes it: for fixtures and for users made by asyncstatus.
pub fn hash_traffic_ops_password(password: &str) -> Result<String, PasswordHashError> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut key = [0u8; KEY_LEN];
    derive(password, &salt, N.trailing_zeros() as u8, R, P, &mut key)?;
    Ok(format!(
        "SCRYPT:{N}:{R}:{P}:{}:{}",
        STD.encode(salt),
        STD.encode(key)
    ))
}

fn derive(
    password: &str,
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
    out: &mut [u8],
) -> Result<(), PasswordHashError> {
    let params = scrypt::Params::new(log_n, r, p, out.len())
        .map_err(|e| PasswordHashError::Scrypt(e.to_string()))?;
    scrypt::scrypt(password.as_bytes(), salt, &params, out)
        .map_err(|e| PasswordHashError::Scrypt(e.to_string()))
}

fn hex_sha1(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_hex_sha1(stored: &str) -> bool {
    stored.len() == 40
        && stored
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Go's `strconv.Atoi` for the values that can be valid here: an optional `+`, then digits
/// (leading zeros allowed). A `-` sign is no valid parameter anyway.
fn atoi(field: &str, name: &'static str) -> Result<u64, PasswordHashError> {
    let digits = field.strip_prefix('+').unwrap_or(field);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PasswordHashError::Parameter(name));
    }
    // Digits beyond u64 are surely beyond the ceilings: report them as too costly.
    digits
        .parse::<u64>()
        .map_err(|_| PasswordHashError::TooCostly(format!("{name} = {digits}")))
}

fn parse(stored: &str) -> Result<Stored, PasswordHashError> {
    // Traffic Ops reads the first six fields and ignores any after them.
    let fields: Vec<&str> = stored.split(':').collect();
    let [scheme, n, r, p, salt, key, ..] = fields[..] else {
        if !stored.starts_with("SCRYPT") {
            return Err(PasswordHashError::Scheme);
        }
        return Err(PasswordHashError::TooFewFields(fields.len()));
    };
    if scheme != "SCRYPT" {
        return Err(PasswordHashError::Scheme);
    }
    let (n, r, p) = (atoi(n, "N")?, atoi(r, "r")?, atoi(p, "p")?);
    if n < 2 || !n.is_power_of_two() {
        return Err(PasswordHashError::Parameter("N"));
    }
    if r == 0 {
        return Err(PasswordHashError::Parameter("r"));
    }
    if p == 0 {
        return Err(PasswordHashError::Parameter("p"));
    }
    if n > MAX_N || r > u64::from(MAX_R) || p > u64::from(MAX_P) {
        return Err(PasswordHashError::TooCostly(format!(
            "{n}:{r}:{p} beyond N ≤ {MAX_N}, r ≤ {MAX_R}, p ≤ {MAX_P}"
        )));
    }
    if 128 * n * r > crate::password::MAX_MEMORY {
        return Err(PasswordHashError::TooCostly(format!(
            "memory 128·N·r = {} bytes",
            128 * n * r
        )));
    }
    if n * r * p > crate::password::MAX_WORK {
        return Err(PasswordHashError::TooCostly(format!(
            "work N·r·p = {}",
            n * r * p
        )));
    }
    let salt = STD.decode(salt).map_err(|_| PasswordHashError::Salt)?;
    if salt.is_empty() {
        return Err(PasswordHashError::Salt);
    }
    let key = STD.decode(key).map_err(|_| PasswordHashError::Key)?;
    if key.len() != KEY_LEN {
        return Err(PasswordHashError::Key);
    }
    Ok(Stored {
        log_n: n.trailing_zeros() as u8,
        // Bounded above by MAX_R and MAX_P, so the casts cannot truncate.
        r: r as u32,
        p: p as u32,
        salt,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python's hashlib:
    /// `python3 -c 'import hashlib,base64; s=bytes(range(64)); print("SCRYPT:16384:8:1:%s:%s" %
    /// (base64.b64encode(s).decode(), base64.b64encode(hashlib.scrypt(b"twelve", salt=s,
    /// n=16384, r=8, p=1, dklen=64)).decode()))'`
    const TWELVE: &str = "SCRYPT:16384:8:1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==:9yoWSxAOfmwNW4xJDzw391kZ7uutlTRi5FniE8rstwxlV10TxJ3DQcgbO4jpcYohxztn82Y6g/QwIVV5eFJOlA==";
    /// Other parameters, taken from the stored value: `s=b"asyncstatus traffic ops fixture
    /// salt, sixty-four bytes long....."`, `hashlib.scrypt("pässwörd".encode(), salt=s,
    /// n=1024, r=4, p=2, dklen=64)`, printed as `SCRYPT:1024:4:2:…` the same way.
    const OTHER_PARAMS: &str = "SCRYPT:1024:4:2:YXN5bmNzdGF0dXMgdHJhZmZpYyBvcHMgZml4dHVyZSBzYWx0LCBzaXh0eS1mb3VyIGJ5dGVzIGxvbmcuLi4uLg==:6DwUKL50W4ZTyaX4/FmBEZ9ULOtwm17o6VgBfm9jHaUus+rlYjUrcmD/kCybOXLdIGtFG0BAcXbOtc4VHEgWcg==";
    /// `python3 -c 'import hashlib; print(hashlib.sha1(b"legacy").hexdigest())'`
    const LEGACY: &str = "9b33046ed39d182e3adafa9045ad6787d4bbc321";

    #[test]
    fn known_scrypt_vectors_verify_their_password_only() {
        assert_eq!(verify_traffic_ops_password(TWELVE, "twelve"), Ok(true));
        assert_eq!(verify_traffic_ops_password(TWELVE, "twelvE"), Ok(false));
        assert_eq!(verify_traffic_ops_password(TWELVE, ""), Ok(false));
        assert_eq!(
            verify_traffic_ops_password(OTHER_PARAMS, "pässwörd"),
            Ok(true)
        );
        assert_eq!(
            verify_traffic_ops_password(OTHER_PARAMS, "passwort"),
            Ok(false)
        );
    }

    #[test]
    fn fields_after_the_sixth_are_ignored_as_in_traffic_ops() {
        let extra = format!("{TWELVE}:anything");
        assert_eq!(verify_traffic_ops_password(&extra, "twelve"), Ok(true));
    }

    #[test]
    fn a_legacy_sha1_matches_its_password_only() {
        assert_eq!(verify_traffic_ops_password(LEGACY, "legacy"), Ok(true));
        assert_eq!(verify_traffic_ops_password(LEGACY, "Legacy"), Ok(false));
        // Go compares the lowercase hex text: an uppercase copy matches nothing.
        assert!(verify_traffic_ops_password(&LEGACY.to_uppercase(), "legacy").is_err());
    }

    #[test]
    fn a_new_hash_has_traffic_ops_layout_and_verifies() {
        let hash = hash_traffic_ops_password("correct horse").unwrap();
        let fields: Vec<&str> = hash.split(':').collect();
        assert_eq!(fields[..4], ["SCRYPT", "16384", "8", "1"]);
        assert_eq!(fields.len(), 6);
        assert_eq!(STD.decode(fields[4]).map(|s| s.len()), Ok(64));
        assert_eq!(STD.decode(fields[5]).map(|k| k.len()), Ok(64));
        assert_eq!(
            verify_traffic_ops_password(&hash, "correct horse"),
            Ok(true)
        );
        assert_eq!(
            verify_traffic_ops_password(&hash, "correct horsE"),
            Ok(false)
        );
        assert_ne!(
            hash,
            hash_traffic_ops_password("correct horse").unwrap(),
            "salts differ"
        );
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        const SALT: &str = "c2FsdA==";
        let key = STD.encode([7u8; 64]);
        let cases: Vec<(String, PasswordHashError)> = vec![
            ("".into(), PasswordHashError::Scheme),
            ("plain".into(), PasswordHashError::Scheme),
            ("SCRYPT".into(), PasswordHashError::TooFewFields(1)),
            (
                "SCRYPT:16384:8:1:c2FsdA==".into(),
                PasswordHashError::TooFewFields(5),
            ),
            (
                format!("BCRYPT:16384:8:1:{SALT}:{key}"),
                PasswordHashError::Scheme,
            ),
            (
                format!("SCRYPT::8:1:{SALT}:{key}"),
                PasswordHashError::Parameter("N"),
            ),
            (
                format!("SCRYPT:x:8:1:{SALT}:{key}"),
                PasswordHashError::Parameter("N"),
            ),
            (
                format!("SCRYPT:-16384:8:1:{SALT}:{key}"),
                PasswordHashError::Parameter("N"),
            ),
            (
                format!("SCRYPT:1000:8:1:{SALT}:{key}"),
                PasswordHashError::Parameter("N"),
            ),
            (
                format!("SCRYPT:1:8:1:{SALT}:{key}"),
                PasswordHashError::Parameter("N"),
            ),
            (
                format!("SCRYPT:16384:0:1:{SALT}:{key}"),
                PasswordHashError::Parameter("r"),
            ),
            (
                format!("SCRYPT:16384:8:0:{SALT}:{key}"),
                PasswordHashError::Parameter("p"),
            ),
            (format!("SCRYPT:16384:8:1::{key}"), PasswordHashError::Salt),
            (
                format!("SCRYPT:16384:8:1:!!!!:{key}"),
                PasswordHashError::Salt,
            ),
            (
                format!("SCRYPT:16384:8:1:c2FsdA:{key}"),
                PasswordHashError::Salt,
            ),
            (format!("SCRYPT:16384:8:1:{SALT}:"), PasswordHashError::Key),
            (
                format!("SCRYPT:16384:8:1:{SALT}:{}", STD.encode([7u8; 32])),
                PasswordHashError::Key,
            ),
        ];
        for (stored, error) in cases {
            assert_eq!(
                verify_traffic_ops_password(&stored, "x"),
                Err(error),
                "{stored}"
            );
        }
        // Go's Atoi takes a plus sign and leading zeros.
        let plus = TWELVE.replacen("16384:8:1", "+016384:08:+1", 1);
        assert_eq!(verify_traffic_ops_password(&plus, "twelve"), Ok(true));
    }

    /// Within the ceilings a value is used; beyond any of them it is refused before any
    /// derivation, so refusing is instant.
    #[test]
    fn costly_parameters_are_refused_without_deriving() {
        let tail = format!("c2FsdA==:{}", STD.encode([7u8; 64]));
        for ok in [
            "16384:8:1",
            "65536:8:1",
            "16384:8:4",
            "131072:4:1",
            "2:16:1",
            "2:1:4",
        ] {
            assert_eq!(
                verify_traffic_ops_password(&format!("SCRYPT:{ok}:{tail}"), "x"),
                Ok(false),
                "{ok}"
            );
        }
        let started = std::time::Instant::now();
        for bad in [
            "2097152:1:1",
            "1048576:16:4",
            "1073741824:8:1",
            "99999999999999999999999:8:1",
            "16384:17:1",
            "16384:8:5",
            "2:1:4294967295",
            "131072:8:1",
            "65536:8:2",
        ] {
            match verify_traffic_ops_password(&format!("SCRYPT:{bad}:{tail}"), "x") {
                Err(PasswordHashError::TooCostly(_)) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        // Within the ceilings but outside RFC 7914 (N < 2^(16·r)): the scrypt crate refuses.
        match verify_traffic_ops_password(&format!("SCRYPT:65536:1:1:{tail}"), "x") {
            Err(PasswordHashError::Scrypt(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
