//! Test hooks: crash points and pauses that the integration tests drive
//! through the environment. They exist only in builds with the
//! `test-hooks` feature (which `cargo test` turns on); in any other build
//! every hook is an empty function.
//!
//! - `SAFETYNET_FAILPOINT=<name>` aborts the process (no unwinding, no
//!   clean-up, like a kill) when it reaches the named point, so tests can
//!   prove a re-run repairs whatever a crash left; points checked with
//!   [`fails`] fail instead of aborting;
//! - `SAFETYNET_PAUSE_AFTER_LOCK_MS=<ms>` keeps the run lock a moment after
//!   taking it, so a second process meets it.

/// Abort the process here if the environment names this point.
#[cfg(feature = "test-hooks")]
pub fn hit(name: &str) {
    if std::env::var("SAFETYNET_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}

/// Without the `test-hooks` feature: nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Whether the environment asks this point to fail (for failures that are
/// answered, not crashes: the audit log cannot be written, say).
#[cfg(feature = "test-hooks")]
pub fn fails(name: &str) -> bool {
    std::env::var("SAFETYNET_FAILPOINT").is_ok_and(|v| v == name)
}

/// Without the `test-hooks` feature: never.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub fn fails(_name: &str) -> bool {
    false
}

/// Wait after taking the run lock, if the environment asks.
#[cfg(feature = "test-hooks")]
pub async fn pause_after_lock() {
    if let Some(ms) = std::env::var("SAFETYNET_PAUSE_AFTER_LOCK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Without the `test-hooks` feature: nothing.
#[cfg(not(feature = "test-hooks"))]
#[inline(always)]
pub async fn pause_after_lock() {}
