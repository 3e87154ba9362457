//! Login throttling that stops attackers, not colleagues.
//!
//! Failed logins are counted under two keys:
//!
//! - per (username, client address), with the limit `max_failures`: someone guessing one
//!   account's password from one place;
//! - per client address across usernames, with the much higher limit
//!   `max_failures_per_address`: password spraying from one place.
//!
//! IPv6 clients are grouped by /64 (one subscriber usually holds a whole /64), and an
//! IPv4-mapped IPv6 address counts as its IPv4 address.
//!
//! A key that reaches its limit is blocked for `base_delay`, and every further failure
//! doubles the delay, up to `max_delay`. While a key is blocked its attempts are refused
//! without a password check (and are not counted). A key's failures are forgotten `window`
//! after its last failure or the end of its block, whichever is later. A correct login clears
//! the (username, address) key, never the address's count (or an attacker could reset it with
//! an account of their own).
//!
//! A correct login for user B from an address where user A failed `max_failures` times is not
//! refused: only the (A, address) key is blocked. Guessing one account from many addresses is
//! bounded by each address's own limits, not by a lock of the account from everywhere (which
//! would let anyone lock any colleague out).
//!
//! Memory is bounded by a hard cap on keys (`max_keys`). At the cap, keys whose failures are
//! forgotten anyway are swept first; if none is, the key with the fewest failures (the oldest
//! of those on a tie) is evicted. Blocked keys therefore go last: to evict a blocked key, an
//! attacker must first fill the whole table with keys that have at least as many failures —
//! `max_keys × max_failures` failed logins (each one a full password derivation), spread over
//! `max_keys × max_failures / max_failures_per_address` addresses, within one window. Written
//! here (a map of small counters) rather than taken from a rate-limiting crate: the policy
//! (two keys, growing delay, eviction that spares blocked keys) is the point, and the crates
//! available (governor and the like) implement fixed-rate token buckets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the throttle counts.
#[derive(Debug, Clone)]
pub struct ThrottlePolicy {
    /// Failures for one (username, address) before it is blocked; 0 disables throttling.
    pub max_failures: u32,
    /// Failures from one address, across usernames, before it is blocked; 0 means no limit
    /// per address.
    pub max_failures_per_address: u32,
    /// How long a key's failures are remembered after its last failure (or its block).
    pub window: Duration,
    /// The first block; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest block.
    pub max_delay: Duration,
    /// The most keys kept in memory.
    pub max_keys: usize,
}

impl ThrottlePolicy {
    /// The built-in policy with these limits and window (1 s doubling up to 15 min, [`DEFAULT_MAX_KEYS`]
    /// keys).
    pub fn new(max_failures: u32, max_failures_per_address: u32, window: Duration) -> Self {
        ThrottlePolicy {
            max_failures,
            max_failures_per_address,
            window,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// Keys kept at most by default. Measured at the cap: about 14 MB with short usernames, 37 MB
/// (peak, eviction included) with the longest a login accepts (128 four-byte characters).
pub const DEFAULT_MAX_KEYS: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, Option<IpAddr>),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Count {
    /// When this key's failures are forgotten.
    fn forgotten_at(&self, window: Duration) -> Instant {
        self.blocked_until.map_or(self.last, |b| b.max(self.last)) + window
    }
}

/// Counts failed logins per (username, address) and per address, in memory.
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    counts: Mutex<HashMap<Key, Count>>,
}

/// The address a client is counted under: IPv6 by its /64, IPv4-mapped IPv6 as IPv4.
pub fn address_group(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        LoginThrottle {
            policy,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// The keys of an attempt with their limits (a zero limit is no limit).
    fn keys(&self, username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = (Key, u32)> {
        let addr = addr.map(address_group);
        std::iter::once((
            Key::Pair(username.to_owned(), addr),
            self.policy.max_failures,
        ))
        .chain(
            addr.map(|a| (Key::Addr(a), self.policy.max_failures_per_address))
                .filter(|(_, limit)| *limit > 0),
        )
    }

    /// `Err(retry_after)` when the (username, address) or the address is blocked.
    pub fn check(
        &self,
        username: &str,
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        if self.policy.max_failures == 0 {
            return Ok(());
        }
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let wait = self
            .keys(username, addr)
            .filter_map(|(key, _)| counts.get(&key)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// The block after `failures` failures against `limit`.
    fn delay(&self, failures: u32, limit: u32) -> Option<Duration> {
        let over = failures.checked_sub(limit)?;
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        Some(
            self.policy
                .base_delay
                .saturating_mul(factor)
                .min(self.policy.max_delay),
        )
    }

    /// Notes a failed login.
    pub fn record_failure(&self, username: &str, addr: Option<IpAddr>, now: Instant) {
        if self.policy.max_failures == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (key, limit) in self.keys(username, addr) {
            if !counts.contains_key(&key) {
                self.make_room(&mut counts, now);
            }
            let window = self.policy.window;
            let count = counts.entry(key).or_insert(Count {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now >= count.forgotten_at(window) {
                *count = Count {
                    failures: 0,
                    last: now,
                    blocked_until: None,
                };
            }
            count.failures = count.failures.saturating_add(1);
            count.last = now;
            if let Some(delay) = self.delay(count.failures, limit) {
                count.blocked_until = Some(now + delay);
            }
        }
    }

    /// Below the cap, nothing; at it, sweeps forgotten keys, else evicts the weakest 1 % of
    /// the keys (not blocked before blocked, then the fewest failures, then the oldest), so
    /// that a spray at the cap pays one pass over the map per hundred new keys, not per key.
    fn make_room(&self, counts: &mut HashMap<Key, Count>, now: Instant) {
        if counts.len() < self.policy.max_keys {
            return;
        }
        let window = self.policy.window;
        counts.retain(|_, c| now < c.forgotten_at(window));
        if counts.len() < self.policy.max_keys {
            return;
        }
        let evict = (self.policy.max_keys / 100).max(1);
        let mut ranked: Vec<_> = counts
            .iter()
            .map(|(k, c)| {
                let blocked = c.blocked_until.is_some_and(|b| b > now);
                ((blocked, c.failures, c.last), k)
            })
            .collect();
        let weakest: Vec<Key> = if ranked.len() > evict {
            ranked.select_nth_unstable_by_key(evict - 1, |(rank, _)| *rank);
            ranked[..evict].iter().map(|(_, k)| (*k).clone()).collect()
        } else {
            ranked.iter().map(|(_, k)| (*k).clone()).collect()
        };
        for key in weakest {
            counts.remove(&key);
        }
    }

    /// A correct login clears the (username, address) failures, not the address's.
    pub fn record_success(&self, username: &str, addr: Option<IpAddr>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.remove(&Key::Pair(username.to_owned(), addr.map(address_group)));
    }

    /// Keys held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
    const S: Duration = Duration::from_secs(1);

    fn policy(max: u32, per_address: u32) -> ThrottlePolicy {
        ThrottlePolicy::new(max, per_address, Duration::from_secs(300))
    }

    #[test]
    fn a_username_is_blocked_from_its_address_only_with_a_growing_delay() {
        let t = LoginThrottle::new(policy(3, 100));
        let start = Instant::now();
        for i in 0..3 {
            assert!(t.check("alice", A, start).is_ok(), "attempt {i}");
            t.record_failure("alice", A, start);
        }
        assert_eq!(t.check("alice", A, start), Err(S), "1 s after the limit");
        assert!(t.check("alice", B, start).is_ok(), "another address");
        assert!(t.check("bob", A, start).is_ok(), "another user");
        let mut now = start + S;
        for expected in [2, 4, 8, 16] {
            assert!(t.check("alice", A, now).is_ok());
            t.record_failure("alice", A, now);
            assert_eq!(t.check("alice", A, now), Err(S * expected));
            now += S * expected;
        }
    }

    #[test]
    fn the_delay_is_capped() {
        let t = LoginThrottle::new(ThrottlePolicy {
            max_delay: Duration::from_secs(60),
            ..policy(1, 0)
        });
        let mut now = Instant::now();
        for _ in 0..40 {
            t.record_failure("alice", A, now);
            now += Duration::from_secs(60);
        }
        t.record_failure("alice", A, now);
        assert_eq!(t.check("alice", A, now), Err(Duration::from_secs(60)));
    }

    #[test]
    fn failures_are_forgotten_a_window_after_the_block() {
        let t = LoginThrottle::new(policy(2, 0));
        let start = Instant::now();
        t.record_failure("alice", A, start);
        t.record_failure("alice", A, start);
        let later = start + S + Duration::from_secs(300);
        assert!(t.check("alice", A, later).is_ok());
        t.record_failure("alice", A, later);
        assert!(t.check("alice", A, later).is_ok(), "counting starts over");
    }

    #[test]
    fn an_address_is_blocked_across_usernames_at_its_own_limit() {
        let t = LoginThrottle::new(policy(3, 5));
        let now = Instant::now();
        for i in 0..5 {
            t.record_failure(&format!("u{i}"), A, now);
        }
        assert_eq!(t.check("anyone", A, now), Err(S), "address A used up");
        assert!(t.check("anyone", B, now).is_ok(), "B is another address");
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let t = LoginThrottle::new(policy(2, 0));
        let now = Instant::now();
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.record_failure("alice", Some(one), now);
        t.record_failure("alice", Some(same), now);
        assert!(t.check("alice", Some(one), now).is_err());
        assert!(t.check("alice", Some(other), now).is_ok());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(address_group(mapped), A.unwrap());
    }

    #[test]
    fn success_clears_the_pair_only() {
        let t = LoginThrottle::new(policy(2, 4));
        let now = Instant::now();
        t.record_failure("bob", A, now);
        t.record_failure("bob", A, now);
        t.record_failure("eve", A, now);
        assert!(t.check("bob", A, now).is_err());
        t.record_success("bob", A);
        assert!(t.check("bob", A, now).is_ok());
        t.record_failure("eve", A, now);
        assert!(t.check("carol", A, now).is_err(), "the address kept count");
    }

    #[test]
    fn keys_are_capped_and_blocked_keys_are_evicted_last() {
        let t = LoginThrottle::new(ThrottlePolicy {
            max_keys: 50,
            ..policy(3, 0)
        });
        let now = Instant::now();
        for _ in 0..3 {
            t.record_failure("victim", A, now);
        }
        for i in 0..10_000 {
            t.record_failure(&format!("spray{i}"), B, now);
        }
        assert!(t.len() <= 50, "{} keys", t.len());
        assert!(t.check("victim", A, now).is_err(), "the blocked key stayed");
    }

    #[test]
    fn zero_disables() {
        let t = LoginThrottle::new(policy(0, 0));
        let now = Instant::now();
        for _ in 0..100 {
            t.record_failure("x", A, now);
        }
        assert!(t.check("x", A, now).is_ok());
        assert!(t.is_empty());
    }
}
