//! Every lake table's name, and the schemas of the bookkeeping tables.
//! This is the one place a table name is formed: the fixed names are the
//! constants below, and a source's tables are made from a checked
//! [`SourceName`] by [`staged`], [`quarantine`] and [`link_table`]. These
//! names are a contract with later stages and analysts.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub use crate::config::SourceName;

/// One row per ingested file: counts, schema hash, missing fields.
pub const BATCHES: &str = "batches";
/// Roster people, one row per person and batch.
pub const ROSTER_PERSON: &str = "roster_person";
/// Roster households.
pub const ROSTER_HOUSEHOLD: &str = "roster_household";
/// The roster's source name.
pub const ROSTER_SOURCE: &str = "roster";
/// One row per committed pulled batch (see `ingest::pull`).
pub const PULLS: &str = "pulls";
/// One row per source per link run: counts and the model's own estimates
/// of its quality (see `link::history`).
pub const LINK_HISTORY: &str = "link_history";
/// One row per source, link run and evidence pattern: how often records
/// with their ID number hidden were linked right (see `link::calibrate`).
pub const LINK_CALIBRATION: &str = "link_calibration";

/// Every audited call of the API, the SQL endpoint and the console.
pub const AUDIT_LOG: &str = "audit_log";
/// API tokens (their SHA-256, never the secret).
pub const API_TOKENS: &str = "api_tokens";
/// Each source's schema as the lake recorded it, once per change.
pub const SOURCE_SCHEMAS: &str = "source_schemas";
/// Pipeline runs, one row per stage.
pub const RUNS: &str = "runs";
/// Trained linkage models: m and u per level, one row per level and version.
pub const LINK_MODEL: &str = "link_model";
/// Clerks' review decisions (append-only).
pub const REVIEW_DECISIONS: &str = "review_decisions";
/// One row per warning: its household, kind, status and evidence hash.
pub const WARNINGS: &str = "warnings";
/// Every change of a warning, with the payload delivered for it.
pub const WARNING_EVENTS: &str = "warning_events";
/// The department records behind each warning.
pub const WARNING_EVIDENCE: &str = "warning_evidence";
/// Thresholds per place, resolved from the thresholds file for a run.
pub const PLACE_THRESHOLDS: &str = "place_thresholds";
/// Delivery attempts, one row per attempt.
pub const DELIVERIES: &str = "deliveries";

/// The name of a table made from a source's name: a plain identifier,
/// safe to paste into SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(String);

impl TableName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for TableName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `staged_<source>`: a source's normalised rows.
pub fn staged(source: &SourceName) -> TableName {
    TableName(format!("staged_{source}"))
}

/// `link_<source>`: the link of every record of a source.
pub fn link_table(source: &SourceName) -> TableName {
    TableName(format!("link_{source}"))
}

/// `linked_<source>`: the warning stage's view of a source's records
/// with their link (never stored).
pub fn linked_view(source: &SourceName) -> TableName {
    TableName(format!("linked_{source}"))
}

/// The source of a `link_<source>` table, or None for any other table
/// (`link_model`, `link_history` and `link_calibration` are the linker's
/// bookkeeping).
pub fn source_of_link_table(table: &str) -> Option<SourceName> {
    table
        .strip_prefix("link_")
        .filter(|_| ![LINK_MODEL, LINK_HISTORY, LINK_CALIBRATION].contains(&table))
        .and_then(|source| SourceName::new(source).ok())
}

/// The source of a `staged_<source>` table, or None for any other table.
pub fn source_of_staged(table: &str) -> Option<SourceName> {
    SourceName::new(table.strip_prefix("staged_")?).ok()
}

/// The source of a `quarantine_<source>` table, or None for any other table.
pub fn source_of_quarantine(table: &str) -> Option<SourceName> {
    SourceName::new(table.strip_prefix("quarantine_")?).ok()
}

/// `quarantine_<source>`: a source's refused rows, with their reasons.
pub fn quarantine(source: &SourceName) -> TableName {
    TableName(format!("quarantine_{source}"))
}

/// The type of every timestamp column: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// One row per committed ingest batch (one input file of one source). The row
/// is written last, so its presence is what makes the batch's staged and
/// quarantined rows visible.
pub fn batches_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file_name", DataType::Utf8, false),
        Field::new("file_sha256", DataType::Utf8, false),
        Field::new("file_bytes", DataType::Int64, false),
        Field::new("raw_path", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("encoding", DataType::Utf8, false),
        Field::new("rows_read", DataType::Int64, false),
        Field::new("rows_staged", DataType::Int64, false),
        Field::new("rows_quarantined", DataType::Int64, false),
        Field::new("unmapped_headers", DataType::Utf8, true),
        // Schema fields none of whose headers the file had (empty here).
        Field::new("missing_fields", DataType::Utf8, true),
        Field::new("started_at", timestamp_type(), false),
        Field::new("finished_at", timestamp_type(), false),
    ]))
}

/// Rows that could not be staged, with where they came from and why.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("source_file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("raw_text", DataType::Utf8, false),
        Field::new("reasons", DataType::Utf8, false),
        Field::new("failed_fields", DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roster_is_one_source_name() {
        assert_eq!(SourceName::roster(), ROSTER_SOURCE);
    }

    #[test]
    fn the_linkers_bookkeeping_is_not_a_source() {
        let health = SourceName::new("health").unwrap();
        assert_eq!(
            source_of_link_table(&link_table(&health)),
            Some(health.clone())
        );
        assert_eq!(source_of_link_table("link_model"), None);
        assert_eq!(source_of_link_table(LINK_HISTORY), None);
        assert_eq!(source_of_link_table(LINK_CALIBRATION), None);
        assert_eq!(source_of_link_table("staged_health"), None);
        assert_eq!(source_of_staged(&staged(&health)), Some(health.clone()));
        assert_eq!(source_of_quarantine(&quarantine(&health)), Some(health));
        assert_eq!(source_of_staged("staged_Bad-Name"), None);
    }
}
