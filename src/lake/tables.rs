//! Names and schemas of the lake's bookkeeping tables. These names are a
//! contract with later stages and analysts.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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

/// `staged_<source>`: a source's normalised rows.
pub fn staged(source: &str) -> String {
    format!("staged_{source}")
}

/// `link_<source>`: the link of every record of a source.
pub fn link_table(source: &str) -> String {
    format!("link_{source}")
}

/// The source of a `link_<source>` table, or None for any other table
/// (`link_model` and `link_history` are the linker's bookkeeping).
pub fn source_of_link_table(table: &str) -> Option<&str> {
    table
        .strip_prefix("link_")
        .filter(|_| table != "link_model" && table != LINK_HISTORY)
}

/// `quarantine_<source>`: a source's refused rows, with their reasons.
pub fn quarantine(source: &str) -> String {
    format!("quarantine_{source}")
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
    fn the_linkers_bookkeeping_is_not_a_source() {
        assert_eq!(source_of_link_table(&link_table("health")), Some("health"));
        assert_eq!(source_of_link_table("link_model"), None);
        assert_eq!(source_of_link_table(LINK_HISTORY), None);
        assert_eq!(source_of_link_table("staged_health"), None);
    }
}
