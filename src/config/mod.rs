//! Files a data office edits without recompiling: source schemas
//! (`schemas/*.toml`) and pipeline files (`pipelines/*.toml`) with their
//! `[delivery]`, `[api]` and `[sql]` sections, and the source names
//! they use (`SourceName`, checked once). Nothing here runs anything;
//! every layer above reads its settings from here.

pub mod delivery;
pub mod pipeline;
pub mod pull;
pub mod schema;
pub mod service;
pub mod source_name;

pub use delivery::DeliveryConfig;
pub use pipeline::{Pipeline, WarnConfig, WarnMode};
pub use pull::{Paging, PullConfig, PullKind};
pub use schema::{FieldType, Role, SourceSchema};
pub use service::{AccessConfig, ApiConfig, BirthDatePrecision, SqlConfig};
pub use source_name::SourceName;
