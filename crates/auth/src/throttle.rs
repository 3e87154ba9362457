//! Login throttling: after `max_failures` failed logins within `window` for one username, or
//! from one client address, further attempts for it are refused until the oldest failure
//! leaves the window.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

/// Counts failed logins per username and per client address, in memory.
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

/// Keys kept before old ones are swept, bounding memory under a spray of usernames.
const SWEEP_AT: usize = 10_000;

impl LoginThrottle {
    /// `max_failures == 0` disables throttling.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginThrottle {
            max_failures: max_failures as usize,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Key> {
        std::iter::once(Key::User(username.to_owned())).chain(addr.map(Key::Addr))
    }

    /// `Err(retry_after)` when the username or the address has used up its failures.
    pub fn check(
        &self,
        username: &str,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        if self.max_failures == 0 {
            return Ok(());
        }
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = Duration::ZERO;
        for key in Self::keys(username, addr) {
            if let Some(times) = map.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    times.pop_front();
                }
                if times.len() >= self.max_failures {
                    if let Some(oldest) = times.front() {
                        wait = wait.max(self.window - now.duration_since(*oldest));
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Notes a failed login.
    pub fn record_failure(&self, username: &str, addr: Option<IpAddr>, now: Instant) {
        if self.max_failures == 0 {
            return;
        }
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for key in Self::keys(username, addr) {
            let times = map.entry(key).or_default();
            times.push_back(now);
            if times.len() > self.max_failures {
                times.pop_front();
            }
        }
    }

    /// A successful login clears the username's failures (not the address's).
    pub fn record_success(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Key::User(username.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[test]
    fn a_username_is_blocked_after_its_failures_and_released_by_the_window() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for i in 0..3 {
            assert!(t.check("alice", A, start).is_ok(), "attempt {i}");
            t.record_failure("alice", A, start);
        }
        let wait = t.check("alice", B, start + Duration::from_secs(10));
        assert_eq!(
            wait,
            Err(Duration::from_secs(50)),
            "blocked from any address"
        );
        assert!(t.check("alice", B, start + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn an_address_is_blocked_but_other_addresses_and_users_are_not() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure("u1", A, now);
        t.record_failure("u2", A, now);
        assert!(t.check("u3", A, now).is_err(), "address A used up");
        assert!(t.check("u3", B, now).is_ok(), "B is another address");
    }

    #[test]
    fn success_clears_the_username_only() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure("bob", A, now);
        t.record_failure("bob", B, now);
        t.record_success("bob");
        assert!(t.check("bob", None, now).is_ok());
    }

    #[test]
    fn zero_disables() {
        let t = LoginThrottle::new(0, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..100 {
            t.record_failure("x", A, now);
        }
        assert!(t.check("x", A, now).is_ok());
    }
}
