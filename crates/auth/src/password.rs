//! Passwords in Traffic Ops' format, `SCRYPT:N:r:p:<base64 salt>:<base64 key>`, so hashes move
//! between Traffic Ops and asyncstatus in both directions. The derivation is the scrypt crate's;
//! only the format is written here, since no crate reads or writes Traffic Ops' encoding (the
//! password-hash crates use the PHC string format).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// Traffic Ops' parameters: N = 16384, r = 8, p = 1, a 64-byte key, a 16-byte salt.
const LOG_N: u8 = 14;
const R: u32 = 8;
const P: u32 = 1;
const KEY_LEN: usize = 64;
const SALT_LEN: usize = 16;

/// The most memory one stored hash may make a derivation use, 128·N·r bytes: 64 MiB, four
/// times what Traffic Ops' parameters take (16 MiB).
pub(crate) const MAX_MEMORY: u64 = 64 << 20;
/// The most work one stored hash may ask for, N·r·p: four times Traffic Ops' (16384·8·1).
pub(crate) const MAX_WORK: u64 = 4 * (1 << LOG_N) * R as u64 * P as u64;

/// A well-formed hash of a random password, verified against when the user does not exist so
/// that an unknown user costs the same derivation as a wrong password.
pub const DUMMY_HASH: &str = "SCRYPT:16384:8:1:WfH3TYlEGnsVkUaAcgtz+Q==:yJyI3V7PK35SPaDL6CNsXr4K4X11izyCIJP86klQCn3HGGM90cMw+vQCR1yhG+FNCSNBBsJ4QjWM0U0wKcNfAw==";

/// Why a stored hash cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored password hash is not in the SCRYPT:N:r:p:salt:key format ({0})")]
pub struct BadHash(&'static str);

/// Hashes a password with a fresh random salt.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut key = [0u8; KEY_LEN];
    derive(password, &salt, LOG_N, R, P, &mut key);
    format!(
        "SCRYPT:{}:{R}:{P}:{}:{}",
        1u32 << LOG_N,
        STANDARD.encode(salt),
        STANDARD.encode(key)
    )
}

fn derive(password: &str, salt: &[u8], log_n: u8, r: u32, p: u32, out: &mut [u8]) -> bool {
    match scrypt::Params::new(log_n, r, p, out.len()) {
        Ok(params) => scrypt::scrypt(password.as_bytes(), salt, &params, out).is_ok(),
        Err(_) => false,
    }
}

struct Parsed {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    key: Vec<u8>,
}

fn parse(hash: &str) -> Result<Parsed, BadHash> {
    let parts: Vec<&str> = hash.split(':').collect();
    let [scheme, n, r, p, salt, key] = parts[..] else {
        return Err(BadHash("six fields"));
    };
    if scheme != "SCRYPT" {
        return Err(BadHash("scheme"));
    }
    let n: u64 = n.parse().map_err(|_| BadHash("N"))?;
    let r: u32 = r.parse().map_err(|_| BadHash("r"))?;
    let p: u32 = p.parse().map_err(|_| BadHash("p"))?;
    if !n.is_power_of_two() || !(2..=1 << 20).contains(&n) || r == 0 || p == 0 {
        return Err(BadHash("parameters out of range"));
    }
    // A stored hash must not cost more than a few normal logins: memory 128·N·r and work
    // N·r·p are bounded (a hash beyond them matches nothing).
    let (r64, p64) = (u64::from(r), u64::from(p));
    if (128 * n).saturating_mul(r64) > MAX_MEMORY {
        return Err(BadHash("memory 128·N·r above 64 MiB"));
    }
    if n.saturating_mul(r64).saturating_mul(p64) > MAX_WORK {
        return Err(BadHash("work N·r·p above four times Traffic Ops'"));
    }
    let salt = STANDARD.decode(salt).map_err(|_| BadHash("salt"))?;
    let key = STANDARD.decode(key).map_err(|_| BadHash("key"))?;
    if !(16..=128).contains(&key.len()) {
        return Err(BadHash("key length"));
    }
    Ok(Parsed {
        log_n: n.trailing_zeros() as u8,
        r,
        p,
        salt,
        key,
    })
}

/// Whether `password` matches `hash`, compared in constant time. A malformed hash matches
/// nothing (and still costs one derivation).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match parse(hash) {
        Ok(h) => {
            let mut out = vec![0u8; h.key.len()];
            derive(password, &h.salt, h.log_n, h.r, h.p, &mut out) && bool::from(out.ct_eq(&h.key))
        }
        Err(_) => {
            verify_password(password, DUMMY_HASH);
            false
        }
    }
}

/// Checks that a stored hash is usable (for `user add` with a pre-made hash, and tests).
pub fn check_hash(hash: &str) -> Result<(), BadHash> {
    parse(hash).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("SCRYPT:16384:8:1:"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("", &hash));
        assert_ne!(hash, hash_password("correct horse"), "salts differ");
    }

    #[test]
    fn hash_layout_is_traffic_ops() {
        let hash = hash_password("x");
        let parts: Vec<&str> = hash.split(':').collect();
        assert_eq!(parts.len(), 6);
        assert_eq!(STANDARD.decode(parts[4]).map(|s| s.len()), Ok(SALT_LEN));
        assert_eq!(STANDARD.decode(parts[5]).map(|k| k.len()), Ok(KEY_LEN));
    }

    /// A hash made outside this crate, in Traffic Ops' format, verifies here: computed
    /// independently with Python's `hashlib.scrypt(b"twelve", salt=b"0123456789abcdef",
    /// n=16384, r=8, p=1, dklen=64)`.
    #[test]
    fn verifies_a_hash_made_elsewhere() {
        let hash = "SCRYPT:16384:8:1:MDEyMzQ1Njc4OWFiY2RlZg==:toVDrUsTlPpvuredSx4tEHUowe2K6WwynZg2PNWBsyZ5f0Bh/DSMN7mU+LKSPHZHrF24478LLLrJzwoo9QMkqQ==";
        assert!(verify_password("twelve", hash));
        assert!(!verify_password("eleven", hash));
    }

    #[test]
    fn the_dummy_hash_is_well_formed() {
        assert_eq!(check_hash(DUMMY_HASH), Ok(()));
        assert!(!verify_password("", DUMMY_HASH));
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for bad in [
            "",
            "plain",
            "SCRYPT:16384:8:1:c2FsdA==",
            "BCRYPT:16384:8:1:c2FsdA==:a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
            "SCRYPT:1000:8:1:c2FsdA==:a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
            "SCRYPT:16384:8:1:!!!:a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
            "SCRYPT:4294967296:8:1:c2FsdA==:a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
        ] {
            assert!(check_hash(bad).is_err(), "{bad}");
            assert!(!verify_password("x", bad), "{bad}");
        }
    }

    /// Memory 128·N·r ≤ 64 MiB and work N·r·p ≤ 4 × Traffic Ops': within them a hash is
    /// used, beyond them it matches nothing (and costs one normal derivation).
    #[test]
    fn stored_parameters_are_bounded() {
        const TAIL: &str = "c2FsdGNoYXJzMDEyMzQ1Ng==:a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5";
        for ok in ["16384:8:1", "65536:8:1", "16384:8:4", "131072:4:1", "2:1:1"] {
            assert_eq!(check_hash(&format!("SCRYPT:{ok}:{TAIL}")), Ok(()), "{ok}");
        }
        for bad in [
            "1048576:16:1",
            "131072:8:1",
            "65536:8:2",
            "16384:8:5",
            "16384:64:1",
            "2:1:4294967295",
        ] {
            let bad = format!("SCRYPT:{bad}:{TAIL}");
            let started = std::time::Instant::now();
            assert!(check_hash(&bad).is_err(), "{bad}");
            assert!(!verify_password("x", &bad), "{bad}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{bad}"
            );
        }
    }
}
