//! Readers that turn an input file into a header and rows of text cells with
//! their line numbers. Types and checks are the normaliser's job; a reader
//! only reports what it could not read at all.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use calamine::{Data, Reader, open_workbook_auto_from_rs};
use csv::StringRecord;
use encoding_rs::{Encoding, GB18030, UTF_8};
use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::config::SourceSchema;
use crate::identity::date::excel_serial_to_date;

/// One data row as read.
pub struct RawRow {
    /// 1-based line (text files) or row (spreadsheets) number.
    pub line: u64,
    /// The row's cells, in header order.
    pub cells: StringRecord,
    /// Set when the reader could not read this row properly; the row goes to
    /// quarantine with this reason.
    pub error: Option<String>,
    /// The row's text when the reader has it verbatim (JSON Lines).
    pub raw_text: Option<String>,
}

/// What kind of file, decided from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated text (.csv, .txt).
    Csv,
    /// Tab-separated text (.tsv, .tab).
    Tsv,
    /// A spreadsheet (.xlsx, .xlsm, .xls, .ods); the first sheet is read.
    Xlsx,
    /// One JSON object per line (.jsonl, .ndjson, .json).
    JsonLines,
}

impl Format {
    /// The format for a file extension (lower case); an unknown one is an error listing those known.
    pub fn from_extension(ext: &str) -> Result<Self> {
        Ok(match ext {
            "csv" | "txt" | "" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "xlsx" | "xlsm" | "xls" | "ods" => Format::Xlsx,
            "jsonl" | "ndjson" | "json" => Format::JsonLines,
            other => {
                bail!("unknown file type '.{other}' (expected .csv, .tsv, .txt, .xlsx, .jsonl)")
            }
        })
    }

    /// The format's short name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Xlsx => "xlsx",
            Format::JsonLines => "jsonl",
        }
    }
}

/// An opened file: its headers and an iterator over its data rows.
pub struct RowReader {
    /// The header row, as written.
    pub headers: Vec<String>,
    /// The text encoding it was read with.
    pub encoding: &'static str,
    /// The data rows.
    pub rows: Box<dyn Iterator<Item = RawRow> + Send>,
}

/// Decide a text file's encoding: a declared one wins; otherwise a BOM, then
/// valid UTF-8, then GB18030. Binary content is refused.
pub fn detect_encoding(path: &Path, declared: &str) -> Result<&'static Encoding> {
    let mut sample = Vec::with_capacity(64 * 1024);
    File::open(path)?.take(64 * 1024).read_to_end(&mut sample)?;
    match declared.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => return Ok(UTF_8),
        "gb18030" | "gbk" | "gb2312" => return Ok(GB18030),
        _ => {}
    }
    if let Some((encoding, _)) = Encoding::for_bom(&sample) {
        return Ok(encoding);
    }
    if sample.contains(&0) {
        bail!(
            "not a text file (it contains NUL bytes): is it binary, or UTF-16 without a byte-order mark?"
        );
    }
    // The sample may end inside a multi-byte character (error_len is None then).
    let utf8 = match std::str::from_utf8(&sample) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    if utf8 {
        return Ok(UTF_8);
    }
    let (_, had_errors) =
        GB18030.decode_without_bom_handling(&sample[..sample.len().saturating_sub(4)]);
    if !had_errors {
        return Ok(GB18030);
    }
    bail!(
        "cannot decode the file: it is neither UTF-8 nor GB18030/GBK text (declare `encoding` in the schema if it is another)"
    )
}

/// Open `path` as `format` for `schema`.
pub fn open(
    path: &Path,
    format: Format,
    schema: &SourceSchema,
    encoding_override: Option<&str>,
) -> Result<RowReader> {
    match format {
        Format::Csv | Format::Tsv => {
            let declared = encoding_override.unwrap_or(&schema.encoding);
            let encoding = detect_encoding(path, declared)?;
            let delimiter = match (&schema.delimiter, format) {
                (Some(d), _) if d == "\\t" || d == "tab" => b'\t',
                (Some(d), _) if d.len() == 1 => d.as_bytes()[0],
                (Some(d), _) => bail!("delimiter {d:?} must be a single character"),
                (None, Format::Tsv) => b'\t',
                (None, _) => sniff_delimiter(path),
            };
            open_delimited(path, encoding, delimiter, schema.header_row)
        }
        Format::Xlsx => open_spreadsheet(path, schema),
        Format::JsonLines => {
            let declared = encoding_override.unwrap_or(&schema.encoding);
            let encoding = detect_encoding(path, declared)?;
            open_json_lines(path, encoding)
        }
    }
}

/// Comma unless the first line has more tabs than commas.
fn sniff_delimiter(path: &Path) -> u8 {
    let mut first = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(8192).read_to_end(&mut first);
    }
    let line = first.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let tabs = line.iter().filter(|b| **b == b'\t').count();
    let commas = line.iter().filter(|b| **b == b',').count();
    if tabs > commas { b'\t' } else { b',' }
}

fn decoded(path: &Path, encoding: &'static Encoding) -> Result<impl Read + Send + use<>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(BufReader::with_capacity(1 << 20, file)))
}

fn open_delimited(
    path: &Path,
    encoding: &'static Encoding,
    delimiter: u8,
    header_row: usize,
) -> Result<RowReader> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(decoded(path, encoding)?);
    let mut headers = StringRecord::new();
    for _ in 0..header_row {
        if !reader
            .read_record(&mut headers)
            .context("cannot read the header row")?
        {
            bail!("the file has no header row (it is empty or shorter than header_row)");
        }
    }
    let headers: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let width = headers.len();
    let mut record = StringRecord::new();
    let rows = std::iter::from_fn(move || {
        loop {
            return match reader.read_record(&mut record) {
                Ok(false) => None,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    if record.len() == 1 && record[0].trim().is_empty() {
                        continue; // blank line
                    }
                    let error = if record.len() != width {
                        Some(format!(
                            "列数不符 (expected {width} columns, found {})",
                            record.len()
                        ))
                    } else if record.as_slice().contains('\u{fffd}') {
                        Some(
                            "含无法解码的字节 (bytes that are not valid in the file's encoding)"
                                .to_string(),
                        )
                    } else {
                        None
                    };
                    Some(RawRow {
                        line,
                        cells: record.clone(),
                        error,
                        raw_text: None,
                    })
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    Some(RawRow {
                        line,
                        cells: StringRecord::new(),
                        error: Some(format!("无法解析的行 (unreadable row): {e}")),
                        raw_text: Some(String::new()),
                    })
                }
            };
        }
    });
    Ok(RowReader {
        headers,
        encoding: encoding.name(),
        rows: Box::new(rows),
    })
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => excel_serial_to_date(dt.as_f64())
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| dt.as_f64().to_string()),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

fn open_spreadsheet(path: &Path, schema: &SourceSchema) -> Result<RowReader> {
    let bytes = std::fs::read(path)?;
    let mut workbook = open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .context("not a readable spreadsheet")?;
    let names = workbook.sheet_names();
    let sheet = match &schema.sheet {
        Some(name) => {
            if !names.contains(name) {
                bail!(
                    "worksheet '{name}' not found; the workbook has: {}",
                    names.join(", ")
                );
            }
            name.clone()
        }
        None => names
            .first()
            .cloned()
            .context("the workbook has no worksheets")?,
    };
    let range = workbook
        .worksheet_range(&sheet)
        .with_context(|| format!("cannot read worksheet '{sheet}'"))?;
    let first_row = range.start().map_or(0, |(r, _)| r as u64);
    let mut rows = range.rows().enumerate().skip(schema.header_row - 1);
    let (_, header_cells) = rows.next().context("the worksheet has no header row")?;
    let headers: Vec<String> = header_cells.iter().map(cell_text).collect();
    let data: Vec<RawRow> = rows
        .filter(|(_, cells)| cells.iter().any(|c| !matches!(c, Data::Empty)))
        .map(|(i, cells)| {
            let error = cells.iter().any(|c| matches!(c, Data::Error(_))).then(|| {
                "单元格含公式错误 (a cell holds a spreadsheet error such as #VALUE!)".to_string()
            });
            RawRow {
                line: first_row + i as u64 + 1,
                cells: cells.iter().map(cell_text).collect(),
                error,
                raw_text: None,
            }
        })
        .collect();
    Ok(RowReader {
        headers,
        encoding: "xlsx",
        rows: Box::new(data.into_iter()),
    })
}

fn open_json_lines(path: &Path, encoding: &'static Encoding) -> Result<RowReader> {
    use std::io::BufRead;
    let mut lines = BufReader::new(decoded(path, encoding)?)
        .lines()
        .enumerate()
        .peekable();
    // Headers are the keys of the first object; later objects are read by key.
    let mut headers: Vec<String> = Vec::new();
    while let Some((_, Ok(line))) = lines.peek() {
        if line.trim().is_empty() {
            lines.next();
            continue;
        }
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line) {
            headers = map.keys().cloned().collect();
        }
        break;
    }
    if headers.is_empty() {
        bail!("the first line is not a JSON object, so the fields cannot be known");
    }
    let keys = headers.clone();
    let rows = lines.filter_map(move |(i, line)| {
        let line_no = i as u64 + 1;
        let text = match line {
            Ok(t) => t,
            Err(e) => {
                return Some(RawRow {
                    line: line_no,
                    cells: StringRecord::new(),
                    error: Some(format!("无法读取的行 (unreadable line): {e}")),
                    raw_text: Some(String::new()),
                });
            }
        };
        if text.trim().is_empty() {
            return None;
        }
        let (cells, error) = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => {
                let cells: StringRecord = keys
                    .iter()
                    .map(|k| match map.get(k) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    })
                    .collect();
                (cells, None)
            }
            Ok(_) => (
                StringRecord::new(),
                Some("不是 JSON 对象 (not a JSON object)".to_string()),
            ),
            Err(e) => (
                StringRecord::new(),
                Some(format!("JSON 格式错误 (invalid JSON): {e}")),
            ),
        };
        Some(RawRow {
            line: line_no,
            cells,
            error,
            raw_text: Some(text),
        })
    });
    Ok(RowReader {
        headers,
        encoding: encoding.name(),
        rows: Box::new(rows),
    })
}
