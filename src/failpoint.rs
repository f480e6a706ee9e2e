//! Crash injection for tests. `SAFETYNET_FAILPOINT=<name>` makes the process
//! abort (no unwinding, no clean-up, like a kill) when it reaches the named
//! point, so tests can prove a re-run repairs whatever a crash left.

/// Abort the process here if the environment names this point.
pub fn hit(name: &str) {
    if std::env::var("SAFETYNET_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
