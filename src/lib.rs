//! safetynet: departmental data screening for return-to-poverty monitoring.
//!
//! Stages, each reading and writing lake tables only:
//! - [`ingest`]: extracts and the roster into `staged_*`, `quarantine_*`,
//!   `batches`, `roster_person`, `roster_household`;
//! - [`link`]: every department record to a roster person (`link_<source>`);
//! - [`warn`]: SQL rules over linked records into `warnings` and `warning_events`;
//! - [`deliver`]: push of warning changes to the monitoring system (`deliveries`);
//! - [`api`]: the HTTP API of `safetynet serve`, with [`access`] for tokens,
//!   roles, masking and the audit log;
//! - [`sql_endpoint`]: the PostgreSQL wire-protocol endpoint of `serve`;
//! - [`generate`]: synthetic extracts with ground truth, for tests and benchmarks.
//!
//! [`identity`] holds the pure rules for ID numbers, names, dates and
//! amounts; [`config`] the files a data office edits; [`lake`] the Delta
//! tables and the one DataFusion session.

pub mod access;
pub mod api;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod error;
pub mod failpoint;
pub mod functions;
pub mod generate;
pub mod identity;
pub mod ingest;
pub mod lake;
pub mod link;
pub mod pipeline;
pub mod serve;
pub mod sql_endpoint;
pub mod warn;
