//! Every integration test, compiled into one test binary.
//!
//! Each test links the whole of DataFusion and delta-rs; one binary instead
//! of one per file keeps CI's build time and disk use down (a binary is
//! hundreds of megabytes). The modules keep the old file-per-area split.

mod backends;
mod common;

mod api;
mod browser;
mod console;
mod deliver;
mod distributed;
mod hostile;
mod ingest;
mod link;
mod object_storage;
mod parquet_scan;
mod pipeline;
mod pull;
mod sql_access;
mod sql_endpoint;
mod warn;
mod warn_eval;
mod warn_specs;
