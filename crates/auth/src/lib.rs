//! Who is asking, and may they: Traffic Ops' scrypt passwords, HS256 tokens with secret
//! rotation and revocation, the [`Principal`] with its permission check, login throttling, and
//! the [`Authenticator`] that ties them to the database; and, in [`traffic_ops`], Traffic Ops'
//! own cookie, access token, password hash and permission rule for its database layout.
//!
//! Plain Rust with no web framework: the api crate adapts this to HTTP. Everything here is
//! synchronous (password derivation is deliberately slow: run it off async workers).

mod authenticator;
mod error;
pub mod password;
mod principal;
mod throttle;
pub mod token;
pub mod traffic_ops;
pub mod traffic_ops_auth;

pub use authenticator::{AuthSettings, Authenticator, LoggedIn};
pub use error::{whole_seconds_up, AuthError};
pub use principal::{AccessRule, Principal};
pub use throttle::{address_group, LoginThrottle, ThrottlePolicy};
pub use token::{Claims, TokenService};
pub use traffic_ops_auth::{Credential, TrafficOpsAuthenticator, TrafficOpsSession};
