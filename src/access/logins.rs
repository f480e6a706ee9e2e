//! Slowing down password guessing (登录限速), for every frontend that takes
//! passwords (the PostgreSQL endpoint, the console).
//!
//! Failures are counted per user name and per client address. The first
//! [`FREE_ATTEMPTS`] cost nothing; after that each attempt waits twice as
//! long as the one before, up to [`MAX_DELAY`]; at [`LOCK_USER_AFTER`]
//! failures a user name is locked for [`LOCK_FOR`] (an address at
//! [`LOCK_ADDRESS_AFTER`]), until an admin lifts it
//! (`DELETE /api/v1/logins/locks/{key}`) or the time passes. A success
//! clears the user's and the address's count. Counts are forgotten after
//! [`FORGET_AFTER`] without a failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Failures before any delay.
pub const FREE_ATTEMPTS: u32 = 3;
/// The longest delay before an attempt is looked at.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// Failures after which a user name is locked.
pub const LOCK_USER_AFTER: u32 = 10;
/// Failures after which a client address is locked (several people may
/// share one address, so it takes more).
pub const LOCK_ADDRESS_AFTER: u32 = 30;
/// How long a lock lasts unless lifted.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// Quiet time after which failures are forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Go ahead.
    Open,
    /// Wait this long first.
    Delay(Duration),
    /// Refuse: locked for this much longer.
    Locked(Duration),
}

/// One entry of the lock list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lock {
    /// `user:<name>` or `address:<ip>`.
    pub key: String,
    /// Failures counted.
    pub failures: u32,
    /// Seconds until it lifts by itself.
    pub seconds_left: u64,
}

/// Failure counts, shared by every frontend of one service.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Failures>>,
}

fn user_key(user: &str) -> String {
    format!("user:{user}")
}

fn address_key(address: IpAddr) -> String {
    format!("address:{address}")
}

impl LoginThrottle {
    /// How to treat an attempt by `user` from `address`: the stricter of
    /// the two counts.
    pub fn check(&self, user: &str, address: IpAddr) -> Gate {
        let Ok(mut map) = self.failures.lock() else {
            return Gate::Open;
        };
        let now = Instant::now();
        map.retain(|_, f| {
            f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.last) < FORGET_AFTER
        });
        let mut gate = Gate::Open;
        for key in [user_key(user), address_key(address)] {
            let Some(f) = map.get(&key) else { continue };
            let this = match f.locked_until {
                Some(until) if until > now => Gate::Locked(until - now),
                _ if f.count >= FREE_ATTEMPTS => {
                    let doublings = (f.count - FREE_ATTEMPTS).min(10);
                    Gate::Delay((Duration::from_millis(250) * 2u32.pow(doublings)).min(MAX_DELAY))
                }
                _ => Gate::Open,
            };
            gate = match (gate, this) {
                (Gate::Locked(a), Gate::Locked(b)) => Gate::Locked(a.max(b)),
                (Gate::Locked(a), _) | (_, Gate::Locked(a)) => Gate::Locked(a),
                (Gate::Delay(a), Gate::Delay(b)) => Gate::Delay(a.max(b)),
                (Gate::Delay(a), Gate::Open) | (Gate::Open, Gate::Delay(a)) => Gate::Delay(a),
                (Gate::Open, Gate::Open) => Gate::Open,
            };
        }
        gate
    }

    /// Count a failed attempt.
    pub fn failed(&self, user: &str, address: IpAddr) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        for (key, lock_at) in [
            (user_key(user), LOCK_USER_AFTER),
            (address_key(address), LOCK_ADDRESS_AFTER),
        ] {
            let f = map.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            f.count += 1;
            f.last = now;
            if f.count >= lock_at && f.locked_until.is_none_or(|u| u <= now) {
                f.locked_until = Some(now + LOCK_FOR);
                tracing::warn!(key = %key, failures = f.count, "login locked after repeated failures");
            }
        }
    }

    /// A successful login clears both counts.
    pub fn succeeded(&self, user: &str, address: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&user_key(user));
            map.remove(&address_key(address));
        }
    }

    /// Lift a lock (`user:<name>`, `address:<ip>`, or a bare user name).
    /// Returns whether anything was there.
    pub fn unlock(&self, key: &str) -> bool {
        let key = if key.contains(':') {
            key.to_string()
        } else {
            user_key(key)
        };
        self.failures
            .lock()
            .map(|mut m| m.remove(&key).is_some())
            .unwrap_or(false)
    }

    /// Keys that are locked now.
    pub fn locks(&self) -> Vec<Lock> {
        let now = Instant::now();
        let Ok(map) = self.failures.lock() else {
            return Vec::new();
        };
        let mut out: Vec<Lock> = map
            .iter()
            .filter_map(|(key, f)| {
                let until = f.locked_until.filter(|u| *u > now)?;
                Some(Lock {
                    key: key.clone(),
                    failures: f.count,
                    seconds_left: (until - now).as_secs(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// HMAC-SHA-256 (RFC 2104), for values derived from a secret: the salts
/// shown to unknown users, pseudonymous keys.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> Vec<u8> { block.iter().map(|b| b ^ byte).collect() };
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn failures_slow_then_lock_and_an_admin_lifts_the_lock() {
        let t = LoginThrottle::default();
        for _ in 0..FREE_ATTEMPTS {
            assert_eq!(t.check("zhang", HOME), Gate::Open);
            t.failed("zhang", HOME);
        }
        let Gate::Delay(first) = t.check("zhang", HOME) else {
            panic!("no delay after {FREE_ATTEMPTS} failures");
        };
        t.failed("zhang", HOME);
        let Gate::Delay(second) = t.check("zhang", HOME) else {
            panic!("no delay");
        };
        assert!(second > first, "{second:?} > {first:?}");
        for _ in 0..LOCK_USER_AFTER {
            t.failed("zhang", HOME);
        }
        assert!(matches!(t.check("zhang", HOME), Gate::Locked(_)));
        // Someone else on another address is not held up by zhang's lock.
        let elsewhere: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(t.check("li", elsewhere), Gate::Open);
        assert_eq!(t.locks().len(), 1, "{:?}", t.locks());
        assert!(t.unlock("zhang"));
        // The address still counts its failures, but is not locked.
        assert!(!matches!(t.check("zhang", elsewhere), Gate::Locked(_)));
        t.succeeded("zhang", HOME);
        assert_eq!(t.check("zhang", HOME), Gate::Open);
    }
}
