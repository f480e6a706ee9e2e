//! Printing query results and summaries.

use anyhow::Result;
use clap::ValueEnum;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

/// Write batches to stdout in the chosen format.
pub fn print_batches(batches: &[RecordBatch], format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write_batches(&mut out, batches, format)
}

pub fn write_batches(
    out: &mut dyn std::io::Write,
    batches: &[RecordBatch],
    format: Format,
) -> Result<()> {
    match format {
        Format::Table => {
            writeln!(out, "{}", pretty_format_batches(batches)?)?;
        }
        Format::Csv => {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                return Ok(());
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        Format::Json => {
            let mut writer = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs)?;
            writer.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// A terminal table with the given header.
pub fn table(header: Vec<&str>) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header);
    t
}
