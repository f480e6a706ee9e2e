//! One run at a time per lake: a lock object under `_locks/` created with
//! an atomic "create if absent" write. It carries a lease that the holder
//! renews while it runs; a lock whose lease ran out (its holder crashed) is
//! taken over.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::lake::Lake;

/// How long a lock stays valid without renewal.
const LEASE: Duration = Duration::from_secs(120);
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(30);

/// Who holds the lake's run lock, as written in the lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    /// What holds it (`run`, `serve`, …).
    pub holder: String,
    /// The host it runs on.
    #[serde(default)]
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it took the lock.
    pub since: DateTime<Utc>,
    /// When the lock lapses unless renewed.
    pub expires: DateTime<Utc>,
}

/// A held lock; released on [`RunLock::release`] (or when its lease runs out
/// after a crash).
pub struct RunLock {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    renewal: tokio::task::JoinHandle<()>,
}

fn payload(info: &LockInfo) -> Result<PutPayload> {
    Ok(PutPayload::from(serde_json::to_vec(info)?))
}

impl RunLock {
    /// Take the lake's run lock, waiting up to `wait` for another run to
    /// finish. Fails with a message naming the holder when it does not.
    pub async fn acquire(lake: &Lake, holder: &str, wait: Duration) -> Result<RunLock> {
        let store = lake.store().clone();
        let path = lake.path("_locks/run.json");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = Utc::now();
            let info = LockInfo {
                holder: holder.to_string(),
                host: host_name(),
                pid: std::process::id(),
                since: now,
                expires: now + chrono::Duration::from_std(LEASE)?,
            };
            let create = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match store.put_opts(&path, payload(&info)?, create).await {
                Ok(_) => {
                    let renewal = tokio::spawn(renew(store.clone(), path.clone(), info));
                    return Ok(RunLock {
                        store,
                        path,
                        renewal,
                    });
                }
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e).context("cannot take the lake's run lock"),
            }
            let current: Option<LockInfo> = match store.get(&path).await {
                Ok(found) => serde_json::from_slice(&found.bytes().await?).ok(),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e).context("cannot read the lake's run lock"),
            };
            match current {
                Some(c) if c.expires > Utc::now() && !holder_died(&c) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(crate::error::Error::LockHeld {
                            holder: c.holder,
                            pid: c.pid,
                            since: c.since.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                            until: c.expires.format("%H:%M:%S UTC").to_string(),
                        }
                        .into());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // Expired, its holder process is gone, or unreadable: take it over.
                _ => {
                    tracing::warn!("taking over an expired run lock");
                    let _ = store.delete(&path).await;
                }
            }
        }
    }

    /// Give the lock up.
    pub async fn release(self) -> Result<()> {
        self.renewal.abort();
        self.store
            .delete(&self.path)
            .await
            .context("cannot release the lake's run lock")?;
        Ok(())
    }
}

async fn renew(store: Arc<dyn ObjectStore>, path: object_store::path::Path, mut info: LockInfo) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        info.expires = Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default();
        if let Ok(body) = payload(&info)
            && let Err(e) = store.put(&path, body).await
        {
            tracing::warn!("cannot renew the run lock: {e}");
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// A holder on this machine whose process no longer exists (it crashed or
/// was killed) holds nothing.
fn holder_died(info: &LockInfo) -> bool {
    !info.host.is_empty()
        && info.host == host_name()
        && info.pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
}
