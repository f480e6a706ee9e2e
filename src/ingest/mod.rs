//! Ingest: department extracts and the roster into the lake.
//!
//! `input` finds files, `rows` reads them, `normalise` types and checks each
//! row, `batch` writes one file as one crash-safe batch, `pull` reads a
//! source from a department's database window by window into such
//! batches, and `roster` splits the roster into `roster_person` and
//! `roster_household`.

pub mod batch;
pub mod input;
pub mod normalise;
pub mod pull;
pub mod roster;
pub mod rows;

use std::sync::Arc;

use anyhow::Result;

pub use batch::{FileReport, IngestOptions};

use crate::config::SourceSchema;
use crate::lake::Lake;
use crate::lake::tables::ROSTER_SOURCE;

/// The result of ingesting one file: its report, or why it was refused.
#[derive(Debug)]
pub struct FileOutcome {
    /// The file as the user named it.
    pub file: String,
    /// Its report, or why it was refused.
    pub result: Result<FileReport>,
}

/// Ingest every input of one source, file by file. A file that is refused
/// does not stop the others; the caller reports all outcomes. After a roster
/// ingest the roster tables are brought up to date.
pub async fn ingest_source(
    lake: &Lake,
    schema: Arc<SourceSchema>,
    inputs: &[String],
    options: &IngestOptions,
    on_file_start: &(dyn Fn(&str) + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<FileOutcome>> {
    let refs = input::expand(inputs).await?;
    let mut outcomes = Vec::with_capacity(refs.len());
    for input_ref in refs {
        let name = input_ref.display_name();
        on_file_start(&name);
        let result = match input_ref.fetch().await {
            Ok(file) => batch::ingest_file(lake, &schema, &file, options, progress).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::error!(file = %name, "{e:#}");
        }
        outcomes.push(FileOutcome { file: name, result });
    }
    if schema.name == ROSTER_SOURCE {
        roster::refresh(lake).await?;
    }
    Ok(outcomes)
}
