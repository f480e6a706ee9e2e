//! The `[delivery]` section of a pipeline file: where warning changes are
//! pushed (the monitoring system) and how hard to try.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The `[delivery]` section of a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The monitoring system's endpoint that takes POSTed batches.
    pub url: String,
    /// Name of an environment variable holding a bearer token for it.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A PEM file of the certificate authorities to trust for an https
    /// url in place of the system's; relative to the pipeline file.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Warning events sent per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Attempts before an item goes to dead-letter.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Seconds to wait for the receiver's answer.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// First retry delay; it doubles per failure up to `backoff_max_seconds`.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_seconds: f64,
    /// The longest retry delay.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: f64,
}

fn default_batch_size() -> usize {
    100
}
fn default_max_attempts() -> u32 {
    8
}
fn default_timeout() -> f64 {
    30.0
}
fn default_backoff_initial() -> f64 {
    2.0
}
fn default_backoff_max() -> f64 {
    600.0
}

impl DeliveryConfig {
    /// Refuse a section that cannot work, naming the key.
    pub fn check(&self) -> Result<()> {
        let url = url::Url::parse(&self.url)
            .with_context(|| format!("[delivery] url '{}' is not a URL", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("[delivery] url '{}' must be http or https", self.url);
        }
        if self.ca_file.is_some() && url.scheme() != "https" {
            bail!(
                "[delivery] ca_file is for an https url; '{}' is not encrypted",
                self.url
            );
        }
        if self.batch_size == 0 || self.max_attempts == 0 {
            bail!("[delivery] batch_size and max_attempts must be at least 1");
        }
        for (name, v) in [
            ("timeout_seconds", self.timeout_seconds),
            ("backoff_initial_seconds", self.backoff_initial_seconds),
            ("backoff_max_seconds", self.backoff_max_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("[delivery] {name} must be a positive number of seconds");
            }
        }
        Ok(())
    }
}
