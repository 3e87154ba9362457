//! Validation of the names and texts users send.

/// Longest job message accepted, in bytes of UTF-8.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Input that breaks a rule; the text names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("username must be 1 to 128 characters of letters, digits, '.', '_', '@' or '-'")]
    Username,
    #[error(
        "username must be 1 to {MAX_LOGIN_USERNAME_CHARS} characters with no control characters"
    )]
    LoginUsername,
    #[error("role name must be 1 to 64 characters of letters, digits, '.', '_' or '-'")]
    RoleName,
    #[error("'{0}' is not a permission name: use 1 to 100 characters of letters, digits, '-', '_', ':' or '.'")]
    Permission(String),
    #[error("message must be at most {MAX_MESSAGE_BYTES} bytes and contain no NUL characters")]
    Message,
    #[error("kind must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'")]
    Kind,
    #[error("a job has at most {} labels", crate::job::MAX_LABELS)]
    Labels,
    #[error("a label key must be 1 to 64 characters of letters, digits, '.', '_', '/' or '-'")]
    LabelKey,
    #[error(
        "a label value must be at most {} characters and contain no NUL characters",
        crate::job::MAX_LABEL_VALUE_CHARS
    )]
    LabelValue,
    #[error("key must be 1 to 200 characters with no control characters")]
    Key,
    #[error(
        "progress must be {{\"done\": n, \"total\": m}} with 0 <= done <= total and total >= 1"
    )]
    Progress,
    #[error(
        "reason must be at most {} bytes and contain no NUL characters",
        crate::job::MAX_REASON_BYTES
    )]
    Reason,
}

fn is_name(s: &str, max: usize, extra: &str) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// A username: 1–128 characters of `A-Z a-z 0-9 . _ @ -`.
pub fn validate_username(name: &str) -> Result<(), ValidationError> {
    is_name(name, 128, "._@-")
        .then_some(())
        .ok_or(ValidationError::Username)
}

/// Longest username a login may give, in characters.
pub const MAX_LOGIN_USERNAME_CHARS: usize = 128;

/// The username of a login: 1–128 characters, none of them a control character.
///
/// Looser than [`validate_username`] (the rule for the users this service creates): Traffic
/// Ops puts no rule on its `tm_user.username` beyond being text, and its LDAP users bring
/// whatever their directory allows (spaces, `+`, `\`, letters beyond ASCII), so a login
/// refuses only what no username can be and bounds the length before anything else looks at
/// the name.
pub fn validate_login_username(name: &str) -> Result<(), ValidationError> {
    let mut count = 0;
    for c in name.chars() {
        count += 1;
        if count > MAX_LOGIN_USERNAME_CHARS || c.is_control() {
            return Err(ValidationError::LoginUsername);
        }
    }
    (count > 0)
        .then_some(())
        .ok_or(ValidationError::LoginUsername)
}

/// A role name: 1–64 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_role_name(name: &str) -> Result<(), ValidationError> {
    is_name(name, 64, "._-")
        .then_some(())
        .ok_or(ValidationError::RoleName)
}

/// A job message: at most [`MAX_MESSAGE_BYTES`], no NUL (PostgreSQL cannot store one in text).
pub fn validate_message(message: &str) -> Result<(), ValidationError> {
    (message.len() <= MAX_MESSAGE_BYTES && !message.contains('\0'))
        .then_some(())
        .ok_or(ValidationError::Message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in [
            "admin",
            "a",
            "jane.doe@example.com",
            "ops_bot-2",
            &"u".repeat(128),
        ] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        for bad in ["", " admin", "a b", "ad;min", "é", &"u".repeat(129), "a\0"] {
            assert_eq!(
                validate_username(bad),
                Err(ValidationError::Username),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn login_usernames_accept_every_created_name_and_traffic_ops_ones() {
        for ok in [
            "admin",
            "jane.doe@example.com",
            "Jane Doe",
            "DOMAIN\\jane",
            "josé",
            "a+b",
            &"u".repeat(128),
            &"é".repeat(128),
        ] {
            assert_eq!(validate_login_username(ok), Ok(()), "{ok}");
        }
        for bad in ["", &"u".repeat(129), "a\0", "a\nb", "\u{7f}", "a\u{85}"] {
            assert_eq!(
                validate_login_username(bad),
                Err(ValidationError::LoginUsername),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn role_names() {
        assert_eq!(validate_role_name("read-only"), Ok(()));
        for bad in ["", "a@b", "a b", &"r".repeat(65)] {
            assert_eq!(
                validate_role_name(bad),
                Err(ValidationError::RoleName),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn messages() {
        assert_eq!(validate_message(""), Ok(()));
        assert_eq!(validate_message(&"m".repeat(MAX_MESSAGE_BYTES)), Ok(()));
        assert_eq!(
            validate_message(&"m".repeat(MAX_MESSAGE_BYTES + 1)),
            Err(ValidationError::Message)
        );
        assert_eq!(validate_message("a\0b"), Err(ValidationError::Message));
        assert_eq!(validate_message("ünïcödé ✓"), Ok(()));
    }
}
