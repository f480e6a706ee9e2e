//! Files a data office edits without recompiling: source schemas
//! (`schemas/*.toml`) and pipeline files (`pipelines/*.toml`).

pub mod pipeline;
pub mod schema;

pub use pipeline::Pipeline;
pub use schema::{FieldType, Role, SourceSchema};
