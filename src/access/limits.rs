//! How much one service takes at once (容量限制): concurrent SQL
//! connections and API requests. Above a limit a caller is refused at once
//! with an error that says so (PostgreSQL 53300, HTTP 503 with
//! Retry-After), never kept waiting. `/healthz` reports the counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts and limits, shared by the frontends of one service.
#[derive(Debug)]
pub struct Limits {
    /// Open SQL connections allowed.
    pub sql_connections: usize,
    /// API requests served at once.
    pub api_requests: usize,
    sql_open: AtomicUsize,
    api_in_flight: AtomicUsize,
    refused: AtomicUsize,
}

/// One unit of capacity, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    counter: Arc<Limits>,
    api: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let c = if self.api {
            &self.counter.api_in_flight
        } else {
            &self.counter.sql_open
        };
        c.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Where the service stands, for `/healthz` and `/metrics`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Load {
    /// Open SQL connections.
    pub sql_connections: usize,
    /// Their limit.
    pub sql_connection_limit: usize,
    /// API requests being served.
    pub api_requests: usize,
    /// Their limit.
    pub api_request_limit: usize,
    /// Callers refused for capacity since the start.
    pub refused: usize,
    /// Whether either limit is reached.
    pub saturated: bool,
}

impl Limits {
    /// Limits of `sql_connections` and `api_requests`.
    pub fn new(sql_connections: usize, api_requests: usize) -> Arc<Limits> {
        Arc::new(Limits {
            sql_connections: sql_connections.max(1),
            api_requests: api_requests.max(1),
            sql_open: AtomicUsize::new(0),
            api_in_flight: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        })
    }

    fn take(self: &Arc<Self>, api: bool) -> Result<Slot, usize> {
        let (counter, limit) = if api {
            (&self.api_in_flight, self.api_requests)
        } else {
            (&self.sql_open, self.sql_connections)
        };
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let slot = Slot {
            counter: self.clone(),
            api,
        };
        if now > limit {
            self.refused.fetch_add(1, Ordering::SeqCst);
            drop(slot);
            return Err(limit);
        }
        Ok(slot)
    }

    /// A connection slot, or the limit when all are taken.
    pub fn sql_connection(self: &Arc<Self>) -> Result<Slot, usize> {
        self.take(false)
    }

    /// A request slot, or the limit when all are taken.
    pub fn api_request(self: &Arc<Self>) -> Result<Slot, usize> {
        self.take(true)
    }

    /// Where the service stands.
    pub fn load(&self) -> Load {
        let sql = self.sql_open.load(Ordering::SeqCst);
        let api = self.api_in_flight.load(Ordering::SeqCst);
        Load {
            sql_connections: sql,
            sql_connection_limit: self.sql_connections,
            api_requests: api,
            api_request_limit: self.api_requests,
            refused: self.refused.load(Ordering::SeqCst),
            saturated: sql >= self.sql_connections || api >= self.api_requests,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_refused_above_the_limit_and_given_back() {
        let limits = Limits::new(2, 1);
        let a = limits.sql_connection().unwrap();
        let _b = limits.sql_connection().unwrap();
        assert_eq!(limits.sql_connection().unwrap_err(), 2);
        assert!(limits.load().saturated);
        drop(a);
        assert!(limits.sql_connection().is_ok());
        let r = limits.api_request().unwrap();
        assert!(limits.api_request().is_err());
        drop(r);
        assert!(limits.api_request().is_ok());
        assert_eq!(limits.load().refused, 2);
        assert_eq!(limits.load().sql_connections, 1);
    }
}
