//! When to try a failed delivery again: exponential backoff with jitter, so
//! many items failing together do not all come back at the same moment.

use std::time::Duration;

use rand::Rng;

/// The wait before attempt `attempt + 1`, after `attempt` failures
/// (1-based): `initial × 2^(attempt-1)`, capped at `max`, then drawn
/// uniformly from its upper half ("equal jitter").
pub fn delay(attempt: u32, initial: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    let full = initial
        .saturating_mul(1u32 << exponent)
        .min(max)
        .max(Duration::from_millis(1));
    let half = full / 2;
    half + Duration::from_secs_f64(rng.random::<f64>() * half.as_secs_f64())
}

/// A `Retry-After` header in seconds (the HTTP-date form is ignored).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_doubles_and_caps_with_jitter_in_the_upper_half() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (initial, max) = (Duration::from_secs(2), Duration::from_secs(60));
        for (attempt, full) in [
            (1, 2.0),
            (2, 4.0),
            (3, 8.0),
            (5, 32.0),
            (6, 60.0),
            (40, 60.0),
        ] {
            for _ in 0..50 {
                let d = delay(attempt, initial, max, &mut rng).as_secs_f64();
                assert!(d >= full / 2.0 && d <= full, "attempt {attempt}: {d}");
            }
        }
        assert_eq!(retry_after(Some(" 30 ")), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2026 07:28:00 GMT")), None);
    }
}
