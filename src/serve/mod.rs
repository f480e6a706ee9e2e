//! `safetynet serve`: the long-running service. Today it runs the pipeline
//! on its schedule (`schedule`); the HTTP API and the PostgreSQL endpoint
//! will live beside it.

pub mod schedule;
