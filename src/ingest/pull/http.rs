//! Pulling from an exchange interface that pages JSON.
//!
//! Pages are asked for one after another, at most `requests_per_second`,
//! each retried with exponential backoff (or the server's `Retry-After`)
//! on 5xx, 429, timeouts and refused connections, up to `retries` times.
//! Every page's records (the array at `items`) are written as JSON lines
//! to one local file, which is ingested when the last page is in: a pull
//! that fails midway writes nothing, and the next run starts again. The
//! whole result is one batch, so an unchanged interface is "already
//! ingested".

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::{Job, record};
use crate::config::{Paging, PullConfig};
use crate::ingest::FileOutcome;

/// Pages beyond this are taken for a server that never ends.
const MAX_PAGES: usize = 1_000_000;

/// Pull every page, then ingest them as one batch.
pub(super) async fn pull(job: &Job<'_>) -> Result<Vec<FileOutcome>> {
    let (lake, pull, progress) = (job.lake, job.pull, job.progress);
    let source = job.source();
    let url = pull.url.clone().unwrap_or_default();
    let token = match &pull.token_env {
        Some(name) => Some(std::env::var(name).map_err(|_| {
            anyhow!("source {source}: environment variable {name} is not set (it holds the bearer token for {url})")
        })?),
        None => None,
    };
    let client = super::http_client(
        Duration::from_secs(pull.timeout_seconds),
        pull.ca_file.as_deref(),
        &format!("source {source}: ca_file"),
    )?;
    let display = format!("http {url}");
    (job.on_file_start)(&display);

    let scratch = tempfile::tempdir()?;
    let path = scratch.path().join(format!("{source}-pull.jsonl"));
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(&path).await?);
    let mut pacer = Pacer::new(pull.requests_per_second);
    let mut offset = 0usize;
    let mut cursor: Option<String> = None;
    let mut rows = 0u64;
    for page in 1..=MAX_PAGES {
        let mut request = reqwest::Url::parse(&url)
            .with_context(|| format!("source {source}: pull url {url:?}"))?;
        {
            let mut query = request.query_pairs_mut();
            query.append_pair("limit", &pull.page_size.to_string());
            match pull.paging {
                Paging::Offset => {
                    query.append_pair("offset", &offset.to_string());
                }
                Paging::Cursor => {
                    if let Some(c) = &cursor {
                        query.append_pair("cursor", c);
                    }
                }
            }
        }
        let body = get(&client, &request, token.as_deref(), pull, &mut pacer)
            .await
            .with_context(|| format!("source {source}: page {page} of {url}"))?;
        let items = at_path(&body, &pull.items)
            .and_then(Value::as_array)
            .ok_or_else(|| {
                anyhow!(
                    "source {source}: page {page} of {url} has no array at {:?} (set items = \"…\" to where the records are)",
                    pull.items
                )
            })?;
        for (i, item) in items.iter().enumerate() {
            if !item.is_object() {
                bail!(
                    "source {source}: page {page} of {url}: record {} is not a JSON object",
                    i + 1
                );
            }
            out.write_all(serde_json::to_string(item)?.as_bytes())
                .await?;
            out.write_all(b"\n").await?;
        }
        rows += items.len() as u64;
        progress(rows);
        match pull.paging {
            Paging::Offset => {
                if items.len() < pull.page_size {
                    break;
                }
                offset += items.len();
            }
            Paging::Cursor => match at_path(&body, &pull.next_cursor) {
                Some(Value::String(next)) if !next.is_empty() => cursor = Some(next.clone()),
                Some(Value::Number(next)) => cursor = Some(next.to_string()),
                _ => break,
            },
        }
        if page == MAX_PAGES {
            bail!("source {source}: {url} gave {MAX_PAGES} pages and did not end");
        }
    }
    out.flush().await?;
    drop(out);
    tracing::info!(source = %source, rows, "pulled every page");

    let result = job.ingest(&path, &display).await;
    if let Ok(report) = &result {
        crate::failpoint::hit("pull:after-batch");
        record(lake, source, pull, &url, report, None, None).await?;
    }
    Ok(vec![FileOutcome {
        file: display,
        result,
    }])
}

/// Spaces requests at least `1 / per_second` apart.
struct Pacer {
    gap: Duration,
    last: Option<Instant>,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        Pacer {
            gap: Duration::from_secs_f64(1.0 / per_second),
            last: None,
        }
    }

    async fn wait(&mut self) {
        if let Some(last) = self.last {
            let since = last.elapsed();
            if since < self.gap {
                tokio::time::sleep(self.gap - since).await;
            }
        }
        self.last = Some(Instant::now());
    }
}

/// One page, retried on what a retry may cure.
/// The TLS library's reason when `error` is a refused server certificate.
fn certificate_refused(error: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // An I/O error's own `source` skips the error it wraps (the TLS
        // error arrives wrapped twice): step into it instead.
        cause = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(wrapped) => Some(wrapped as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

async fn get(
    client: &reqwest::Client,
    url: &reqwest::Url,
    token: Option<&str>,
    pull: &PullConfig,
    pacer: &mut Pacer,
) -> Result<Value> {
    let mut last_error = String::new();
    for attempt in 0..=pull.retries {
        pacer.wait().await;
        let mut request = client.get(url.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let backoff = Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6)));
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                return response
                    .json::<Value>()
                    .await
                    .context("the answer is not JSON");
            }
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS =>
            {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(backoff)
                    .min(Duration::from_secs(60));
                last_error = format!("HTTP {}", response.status());
                tracing::warn!(attempt, status = %response.status(), wait_ms = wait.as_millis() as u64, "page refused; retrying");
                if attempt < pull.retries {
                    tokio::time::sleep(wait).await;
                }
            }
            Ok(response) => {
                let status = response.status();
                let text: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                bail!("HTTP {status}: {text}");
            }
            Err(e) => {
                if let Some(refused) = certificate_refused(&e) {
                    // Not a passing fault: retrying would only repeat it.
                    bail!(
                        "the server's certificate is not trusted ({refused}); if a provincial \
                         authority issued it, name that authority's PEM file in ca_file"
                    );
                }
                if !(e.is_timeout() || e.is_connect() || e.is_request()) {
                    return Err(e.into());
                }
                last_error = format!("{e}");
                tracing::warn!(attempt, error = %e, "page not fetched; retrying");
                if attempt < pull.retries {
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
    bail!("gave up after {} attempts: {last_error}", pull.retries + 1)
}

/// The value at a dotted path (`data.items`); the whole body for "" or ".".
fn at_path<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(body, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_into_the_body() {
        let body: Value = serde_json::json!({"data": {"items": [1, 2], "next": "c2"}});
        assert_eq!(
            at_path(&body, "data.items")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(at_path(&body, "data.next").unwrap(), "c2");
        assert!(at_path(&body, "data.missing").is_none());
        assert_eq!(at_path(&body, ""), Some(&body));
    }
}
