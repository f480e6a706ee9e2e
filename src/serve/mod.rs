//! `safetynet serve`: the long-running service. It runs the pipeline on its
//! schedule (`schedule`), serves the HTTP API (`crate::api`) and pushes
//! warning changes (`crate::deliver`); the service loop itself is in
//! `cli::service`.

pub mod schedule;
