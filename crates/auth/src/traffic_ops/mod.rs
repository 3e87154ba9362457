//! Traffic Ops' own credentials, for `database.layout = "traffic_ops"` (issue 12): its
//! `mojolicious` session cookie, its `access_token` JWT, its password hashes, and its
//! authorization rule, each written from the facts of `shared/TRAFFIC_OPS.md` §2–3 so that
//! what Traffic Ops issues is accepted here and what asyncstatus issues is accepted by
//! Traffic Ops.
//!
//! Pure functions only: no database, no clock (the caller passes `now`), no HTTP. Which
//! credential a request carries and in what order they are tried is the api crate's.
//! The key is always Traffic Ops' `secrets[0]` from cdn.conf: Traffic Ops signs and verifies
//! with that one only, so there is no rotation here.

pub mod access_token;
pub mod cookie;
pub mod password;
pub mod permissions;

pub use access_token::{make_access_token, verify_access_token, AccessTokenError};
pub use cookie::{Cookie, CookieError};
pub use password::{hash_traffic_ops_password, verify_traffic_ops_password, PasswordHashError};
pub use permissions::{authorize_traffic_ops, TrafficOpsForbidden, ASYNC_STATUS_PRIV_LEVEL};

/// Traffic Ops' 401 text when no credential is given, or the access_token is bad.
pub const UNAUTHORIZED_PLEASE_LOG_IN: &str = "unauthorized, please log in.";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    /// Checks, with Python's standard library only, what this module makes: each cookie
    /// equals the one Python writes from the documented algorithm (Go's JSON escapes
    /// emulated), the access token's HS256 signature and claims, and the SCRYPT hash. Python
    /// (hmac, hashlib, base64, json) is an implementation independent of the crates used here.
    const CHECKER: &str = r#"
import base64, hashlib, hmac, json, sys
d = json.load(sys.stdin)
s = d["secret"].encode()
def gojson(v):
    j = json.dumps(v, ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        j = j.replace(a, b)
    return j
def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def unb64url(t):
    return base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
for c in d["cookies"]:
    j = '{"auth_data":%s,"expires":%d,"by":"trafficcontrol-go-tocookie"}' % (gojson(c["user"]), c["expires"])
    p = b64url(j.encode())
    want = p + "--" + hmac.new(s, p.encode(), hashlib.sha1).hexdigest()
    assert c["cookie"] == want, (c, want)
h, p, sig = d["token"].split(".")
assert hmac.compare_digest(unb64url(sig), hmac.new(s, (h + "." + p).encode(), hashlib.sha256).digest())
assert json.loads(unb64url(h))["alg"] == "HS256"
assert json.loads(unb64url(p)) == {"exp": d["token_exp"], "mojoCookie": d["token_mojo"]}, p
f = d["hash"].split(":")
assert f[0:4] == ["SCRYPT", "16384", "8", "1"] and len(f) == 6, f
salt, key = base64.b64decode(f[4], validate=True), base64.b64decode(f[5], validate=True)
assert len(salt) == 64 and len(key) == 64
assert hmac.compare_digest(key, hashlib.scrypt(d["password"].encode(), salt=salt, n=16384, r=8, p=1, dklen=64))
print("ok")
"#;

    #[test]
    fn what_is_made_here_verifies_under_an_independent_python_implementation() {
        let secret = "a secret with ünïcode, <html> & \"quotes\"";
        let users = [
            "admin",
            "",
            "o'brien",
            "<script>&amp;</script>",
            "tab\tnew\nline\r\u{0}\u{1f}\u{7f}",
            "back\\slash \"quoted\"",
            "line\u{2028}para\u{2029}",
            "日本語 ünïcödé 🚀",
        ];
        let cookies: Vec<serde_json::Value> = users
            .iter()
            .zip([
                0,
                1,
                -1,
                1_700_000_000,
                i64::MAX,
                i64::MIN,
                42,
                4_102_444_800,
            ])
            .map(|(user, expires)| {
                serde_json::json!({
                    "user": user,
                    "expires": expires,
                    "cookie": cookie::make(user, expires, secret),
                })
            })
            .collect();
        let mojo = cookie::make("admin", 1_700_021_600, secret);
        let password = "correct horse battery stäple";
        let input = serde_json::json!({
            "secret": secret,
            "cookies": cookies,
            "token": make_access_token(&mojo, 1_700_021_600, secret).unwrap(),
            "token_exp": 1_700_021_600,
            "token_mojo": mojo,
            "hash": hash_traffic_ops_password(password).unwrap(),
            "password": password,
        });
        let mut child = Command::new("python3")
            .args(["-c", CHECKER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed by the test suite (see README)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "python3 disagrees:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
