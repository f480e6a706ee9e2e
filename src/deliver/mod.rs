//! Push delivery of warnings to the monitoring system (推送).
//!
//! Items come from the outbox (`warning_events` rows with a payload, see
//! [`outbox`]). A pass POSTs due items in batches, oldest first, as
//! `{"batch_id": …, "items": [payload, …]}`; each payload carries its
//! `idempotency_key`, and a key always carries the same bytes.
//!
//! - 2xx: every item of the batch is delivered;
//! - network error, timeout, 408, 429, 5xx: the batch is retried later with
//!   exponential backoff and jitter (honouring `Retry-After`); after
//!   `max_attempts` an item goes to dead-letter;
//! - any other 4xx: a batch is split and its items sent one by one, so only
//!   the item the receiver refuses is stopped, with the error recorded;
//! - an item that failed before is retried alone, so it cannot drag the
//!   rest of a batch to dead-letter.
//!
//! Versions of one warning are delivered in order: while an older version
//! waits for a retry, newer ones wait too.

pub mod backoff;
pub mod outbox;

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use crate::config::DeliveryConfig;
use crate::lake::Lake;
use outbox::{Attempt, DEAD, DELIVERED, Item, REJECTED, RETRY, State};

/// What one pass did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeliveryReport {
    /// Items the receiver accepted.
    pub delivered: usize,
    /// Failed attempts that will be retried.
    pub retried: usize,
    /// Items the receiver refused.
    pub rejected: usize,
    /// Items that used up their attempts in this pass.
    pub dead: usize,
    /// Items still waiting for a retry when the pass ended.
    pub waiting: usize,
    /// One line per failed attempt.
    pub errors: Vec<String>,
}

/// Counts of outbox items by state, and the age of the oldest undelivered
/// one (the delivery lag).
#[derive(Debug, Default, Clone, Serialize)]
pub struct DeliveryStatus {
    /// Items not yet delivered.
    pub pending: usize,
    /// Items the receiver accepted.
    pub delivered: usize,
    /// Items the receiver refused.
    pub rejected: usize,
    /// Items that used up their attempts.
    pub dead: usize,
    /// Failed attempts, over all items.
    pub failed_attempts: i64,
    /// Age in seconds of the oldest undelivered item (0 when none).
    pub lag_seconds: f64,
}

/// Count `items` by state, and the delivery lag.
pub fn status_of(items: &[Item]) -> DeliveryStatus {
    let mut s = DeliveryStatus::default();
    let now = Utc::now();
    for item in items {
        match item.state {
            State::Pending { .. } => {
                s.pending += 1;
                let age = (now - item.created).num_milliseconds() as f64 / 1000.0;
                s.lag_seconds = s.lag_seconds.max(age);
            }
            State::Delivered => s.delivered += 1,
            State::Rejected => s.rejected += 1,
            State::Dead => s.dead += 1,
        }
        s.failed_attempts += item.attempts;
    }
    s
}

/// Items to send now, oldest first, holding back any whose warning has an
/// older version still pending.
fn due(items: &[Item], now: DateTime<Utc>) -> Vec<&Item> {
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for item in items {
        let State::Pending { next } = item.state else {
            continue;
        };
        if blocked.contains(item.warning_id.as_str()) {
            continue;
        }
        blocked.insert(&item.warning_id);
        if next.is_none_or(|t| t <= now) {
            out.push(item);
        }
    }
    out
}

/// How the receiver answered one POST.
enum Answer {
    Ok,
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    Refused {
        status: u16,
        error: String,
    },
}

struct Sender {
    client: reqwest::Client,
    config: DeliveryConfig,
    token: Option<String>,
}

impl Sender {
    async fn post(&self, batch_id: &str, payloads: &[&str]) -> Answer {
        let body = format!(
            "{{\"batch_id\":{},\"items\":[{}]}}",
            serde_json::Value::from(batch_id),
            payloads.join(",")
        );
        let mut request = self
            .client
            .post(&self.config.url)
            .header("content-type", "application/json")
            .header("x-safetynet-batch", batch_id)
            .body(body);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "network error"
                };
                return Answer::Retry {
                    status: None,
                    error: format!("{kind}: {e}"),
                    after: None,
                };
            }
        };
        let status = response.status();
        let after = backoff::retry_after(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        if status.is_success() {
            return Answer::Ok;
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let error = format!("HTTP {}: {}", status.as_u16(), text.trim());
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Answer::Retry {
                status: Some(status.as_u16()),
                error,
                after,
            }
        } else {
            Answer::Refused {
                status: status.as_u16(),
                error,
            }
        }
    }
}

/// One delivery pass: send everything due, and keep retrying items whose
/// next attempt falls within `retry_within` of the start. Items still
/// waiting after that are left for the next pass.
pub async fn pass(
    lake: &Lake,
    config: &DeliveryConfig,
    retry_within: Duration,
) -> Result<DeliveryReport> {
    config.check()?;
    // Passes in one process (the run's deliver stage, the serve loop) take
    // turns, so an item is not sent twice at once.
    static PASSES: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    let _turn = PASSES.get_or_init(Default::default).lock().await;
    let token = match &config.token_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("[delivery] token_env names {var}, which is not set in the environment")
        })?),
        None => None,
    };
    let sender = Sender {
        client: crate::ingest::pull::http_client(
            Duration::from_secs_f64(config.timeout_seconds),
            config.ca_file.as_deref(),
            "[delivery] ca_file",
        )?,
        config: config.clone(),
        token,
    };
    let deadline = Utc::now() + chrono::Duration::from_std(retry_within)?;
    let mut report = DeliveryReport::default();
    // Not the thread-local generator: this future moves between threads.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    loop {
        let ctx = lake
            .session_with(&[crate::warn::store::WARNING_EVENTS, outbox::DELIVERIES])
            .await?;
        let items = outbox::items(&ctx, None).await?;
        let now = Utc::now();
        let due = due(&items, now);
        if due.is_empty() {
            let next = items
                .iter()
                .filter_map(|i| match i.state {
                    State::Pending { next } => next,
                    _ => None,
                })
                .min();
            match next {
                Some(t) if t <= deadline => {
                    tokio::time::sleep((t - now).to_std().unwrap_or_default()).await;
                    continue;
                }
                _ => {
                    report.waiting = items
                        .iter()
                        .filter(|i| matches!(i.state, State::Pending { .. }))
                        .count();
                    return Ok(report);
                }
            }
        }
        tracing::info!(items = due.len(), "delivering");
        let keys: Vec<String> = due.iter().map(|i| i.idempotency_key.clone()).collect();
        let bodies = outbox::payloads(&ctx, &keys).await?;
        // Items that failed before go alone, so one item the receiver keeps
        // failing on cannot take its batch-mates to dead-letter with it.
        let (fresh, retried): (Vec<&Item>, Vec<&Item>) =
            due.iter().copied().partition(|i| i.attempts == 0);
        let mut groups: Vec<Vec<&Item>> = fresh
            .chunks(config.batch_size)
            .map(<[&Item]>::to_vec)
            .collect();
        groups.extend(retried.into_iter().map(|i| vec![i]));
        for group in groups {
            let mut queue = vec![group];
            while let Some(batch) = queue.pop() {
                let batch_id = format!(
                    "B{}-{}",
                    Utc::now().format("%Y%m%dT%H%M%S%.3f"),
                    &batch[0].idempotency_key
                );
                let payloads: Vec<&str> = batch
                    .iter()
                    .filter_map(|i| bodies.get(&i.idempotency_key).map(String::as_str))
                    .collect();
                if payloads.len() != batch.len() {
                    bail!("outbox item {} has no payload", batch[0].idempotency_key);
                }
                let answer = sender.post(&batch_id, &payloads).await;
                crate::failpoint::hit("deliver:after-post");
                let mut attempts = Vec::new();
                let attempt = |item: &Item,
                               outcome: &'static str,
                               status: Option<u16>,
                               error: Option<String>,
                               next: Option<DateTime<Utc>>| Attempt {
                    idempotency_key: item.idempotency_key.clone(),
                    warning_id: item.warning_id.clone(),
                    batch_id: batch_id.clone(),
                    attempt: item.attempts + 1,
                    outcome,
                    http_status: status,
                    error,
                    next_attempt_at: next,
                };
                match answer {
                    Answer::Ok => {
                        for item in &batch {
                            attempts.push(attempt(item, DELIVERED, Some(200), None, None));
                        }
                        report.delivered += batch.len();
                    }
                    Answer::Refused { .. } if batch.len() > 1 => {
                        // Find the item the receiver refuses: send one by one.
                        queue.extend(batch.iter().rev().map(|i| vec![*i]));
                        continue;
                    }
                    Answer::Refused { status, error } => {
                        report.rejected += 1;
                        report
                            .errors
                            .push(format!("{}: {error}", batch[0].idempotency_key));
                        attempts.push(attempt(batch[0], REJECTED, Some(status), Some(error), None));
                    }
                    Answer::Retry {
                        status,
                        error,
                        after,
                    } => {
                        report.errors.push(format!("batch {batch_id}: {error}"));
                        for item in &batch {
                            let n = item.attempts + 1;
                            if n >= i64::from(config.max_attempts) {
                                report.dead += 1;
                                attempts.push(attempt(
                                    item,
                                    DEAD,
                                    status,
                                    Some(error.clone()),
                                    None,
                                ));
                                continue;
                            }
                            let wait = backoff::delay(
                                n as u32,
                                Duration::from_secs_f64(config.backoff_initial_seconds),
                                Duration::from_secs_f64(config.backoff_max_seconds),
                                &mut rng,
                            )
                            .max(after.unwrap_or_default());
                            report.retried += 1;
                            attempts.push(attempt(
                                item,
                                RETRY,
                                status,
                                Some(error.clone()),
                                Some(Utc::now() + chrono::Duration::from_std(wait)?),
                            ));
                        }
                    }
                }
                outbox::record(lake, &attempts).await?;
            }
        }
    }
}

/// Make dead-lettered and rejected items pending again (after the receiver
/// was fixed); returns how many.
pub async fn requeue(lake: &Lake) -> Result<usize> {
    let ctx = lake
        .session_with(&[crate::warn::store::WARNING_EVENTS, outbox::DELIVERIES])
        .await?;
    let stopped: Vec<Attempt> = outbox::items(&ctx, None)
        .await?
        .into_iter()
        .filter(|i| matches!(i.state, State::Dead | State::Rejected))
        .map(|i| Attempt {
            idempotency_key: i.idempotency_key,
            warning_id: i.warning_id,
            batch_id: "requeue".into(),
            attempt: 0,
            outcome: outbox::REQUEUED,
            http_status: None,
            error: None,
            next_attempt_at: None,
        })
        .collect();
    outbox::record(lake, &stopped).await?;
    Ok(stopped.len())
}

/// Where every outbox item stands.
pub async fn status(lake: &Lake) -> Result<(DeliveryStatus, Vec<Item>)> {
    let ctx = lake
        .session_with(&[crate::warn::store::WARNING_EVENTS, outbox::DELIVERIES])
        .await?;
    let items = outbox::items(&ctx, None).await?;
    Ok((status_of(&items), items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, warning: &str, state: State) -> Item {
        Item {
            idempotency_key: key.into(),
            warning_id: warning.into(),
            event: "raised".into(),
            created: Utc::now(),
            attempts: 0,
            state,
            last_error: None,
            last_attempt: None,
        }
    }

    #[test]
    fn newer_versions_wait_behind_an_older_pending_one() {
        let now = Utc::now();
        let later = Some(now + chrono::Duration::seconds(60));
        let items = vec![
            item("a1", "A", State::Pending { next: later }),
            item("a2", "A", State::Pending { next: None }),
            item("b1", "B", State::Dead),
            item("b2", "B", State::Pending { next: None }),
            item("c1", "C", State::Delivered),
        ];
        let keys: Vec<&str> = due(&items, now)
            .iter()
            .map(|i| i.idempotency_key.as_str())
            .collect();
        assert_eq!(keys, ["b2"]);
    }
}
