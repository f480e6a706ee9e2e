//! Turning text cells into typed, checked values, row by row, into Arrow
//! batches: one for staged rows, one for quarantined rows.
//!
//! Every field keeps its original text in `<field>_raw` beside the
//! normalised value. A row whose required field is missing or fails a check
//! is quarantined with one reason per failing field; a bad optional value is
//! staged as null with a note in `issues`, so no good data is thrown away
//! for a typo in a column nobody needs.

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::Result;
use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder,
    RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field as ArrowField, Schema, SchemaRef};

use super::rows::RawRow;
use crate::config::schema::{Field, FieldType, Role, SourceSchema, TemplatePart, template_parts};
use crate::identity::text::{is_blank, normalise_name_cow, normalise_text_cow};
use crate::identity::{normalise_id_number, parse_amount_cents, parse_date};
use crate::lake::tables::quarantine_schema;

/// Days from 0001-01-01 (chrono's CE day 1) to 1970-01-01, Arrow's Date32 epoch.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// The staged table's columns for a source.
pub fn staged_schema(schema: &SourceSchema) -> SchemaRef {
    let mut fields = vec![
        ArrowField::new("batch_id", DataType::Utf8, false),
        ArrowField::new("source_file", DataType::Utf8, false),
        ArrowField::new("line", DataType::Int64, false),
    ];
    for field in &schema.fields {
        let data_type = match field.kind {
            FieldType::String | FieldType::Enum => DataType::Utf8,
            FieldType::Integer => DataType::Int64,
            FieldType::Decimal => DataType::Decimal128(18, 2),
            FieldType::Date => DataType::Date32,
        };
        fields.push(ArrowField::new(&field.name, data_type, true));
        fields.push(ArrowField::new(
            raw_column(&field.name),
            DataType::Utf8,
            true,
        ));
        if field.role == Some(Role::IdNumber) {
            fields.push(ArrowField::new(
                format!("{}_valid", field.name),
                DataType::Boolean,
                true,
            ));
        }
    }
    fields.push(ArrowField::new("issues", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

enum Value<'a> {
    Null,
    Text(Cow<'a, str>),
    Int(i64),
    Fen(i128),
    Date(i32),
}

enum ValueBuilder {
    Text(StringBuilder),
    Int(Int64Builder),
    Fen(Decimal128Builder),
    Date(Date32Builder),
}

impl ValueBuilder {
    fn new(kind: FieldType) -> Self {
        match kind {
            FieldType::String | FieldType::Enum => ValueBuilder::Text(StringBuilder::new()),
            FieldType::Integer => ValueBuilder::Int(Int64Builder::new()),
            FieldType::Decimal => ValueBuilder::Fen(
                Decimal128Builder::new().with_data_type(DataType::Decimal128(18, 2)),
            ),
            FieldType::Date => ValueBuilder::Date(Date32Builder::new()),
        }
    }

    fn append(&mut self, value: Value<'_>) {
        match (self, value) {
            (ValueBuilder::Text(b), Value::Text(v)) => b.append_value(v.as_ref()),
            (ValueBuilder::Int(b), Value::Int(v)) => b.append_value(v),
            (ValueBuilder::Fen(b), Value::Fen(v)) => b.append_value(v),
            (ValueBuilder::Date(b), Value::Date(v)) => b.append_value(v),
            (ValueBuilder::Text(b), _) => b.append_null(),
            (ValueBuilder::Int(b), _) => b.append_null(),
            (ValueBuilder::Fen(b), _) => b.append_null(),
            (ValueBuilder::Date(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ValueBuilder::Text(b) => finish_text(b),
            ValueBuilder::Int(b) => Arc::new(b.finish()),
            ValueBuilder::Fen(b) => Arc::new(b.finish()),
            ValueBuilder::Date(b) => Arc::new(b.finish()),
        }
    }
}

struct FieldColumns {
    value: ValueBuilder,
    raw: StringBuilder,
    valid: Option<BooleanBuilder>,
}

/// Staged columns with nearly all-distinct values: the record key, names,
/// ID numbers, amounts and line numbers, and the original text of those.
pub fn high_cardinality_columns(schema: &SourceSchema) -> Vec<String> {
    let mut columns = vec!["line".to_string()];
    for field in &schema.fields {
        let distinct = matches!(
            field.role,
            Some(Role::RecordKey | Role::IdNumber | Role::PersonName)
        ) || field.name == schema.key
            || field.kind == FieldType::Decimal;
        if distinct {
            columns.push(field.name.clone());
            columns.push(raw_column(&field.name));
        }
    }
    columns
}

/// The staged column that keeps `field`'s text as the file had it.
fn raw_column(field: &str) -> String {
    format!("{field}_raw")
}

/// The staged columns that keep each field's text as the file had it.
pub fn raw_text_columns(schema: &SourceSchema) -> Vec<String> {
    schema
        .fields
        .iter()
        .map(|field| raw_column(&field.name))
        .collect()
}

/// Where one schema field's text comes from in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Not in this file: the field is empty.
    Absent,
    /// The file column at this index.
    Column(usize),
    /// A `derive` template: text and file columns, in order.
    Derived(Vec<Piece>),
}

/// One piece of a derived field's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as it is.
    Text(String),
    /// The file column at this index.
    Column(usize),
}

impl Input {
    /// This field's text in `cells`; a derived field is empty when any of
    /// its columns is.
    fn text<'a>(&self, cells: &'a csv::StringRecord) -> Cow<'a, str> {
        match self {
            Input::Absent => Cow::Borrowed(""),
            Input::Column(c) => Cow::Borrowed(cells.get(*c).unwrap_or("")),
            Input::Derived(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Column(c) => match cells.get(*c).map(str::trim) {
                            Some(v) if !v.is_empty() => out.push_str(v),
                            _ => return Cow::Borrowed(""),
                        },
                    }
                }
                Cow::Owned(out)
            }
        }
    }
}

/// Where each schema field is found in the file.
#[derive(Debug)]
pub struct ColumnMap {
    /// Per schema field, where its text comes from.
    pub columns: Vec<Input>,
    /// File headers no field claimed.
    pub unmapped: Vec<String>,
    /// Optional fields none of whose headers is in the file (their column
    /// is empty for this batch, and the batch says so).
    pub missing: Vec<String>,
}

/// Match file headers to schema fields. A field takes the first of its
/// headers that no earlier field took; when every one it accepts is taken,
/// it shares the column of its first header found (several fields may read
/// one header, each with its own `map`: 身份证号 as both member_id and
/// id_number, one 业务类型 column as both assistance_type and action).
/// A missing required field is an error naming the file, the field, the
/// headers it accepts and the headers found.
pub fn map_columns(schema: &SourceSchema, headers: &[String], file: &str) -> Result<ColumnMap> {
    use crate::config::schema::header_key;
    let keys: Vec<String> = headers.iter().map(|h| header_key(h)).collect();
    let mut claimed = vec![false; headers.len()];
    let mut columns = Vec::with_capacity(schema.fields.len());
    let mut missing_required = Vec::new();
    let mut missing = Vec::new();
    for field in &schema.fields {
        if field.derive.is_some() {
            // Resolved below, once every plain field has its column.
            columns.push(Input::Absent);
            continue;
        }
        let aliases: Vec<String> = field.headers.iter().map(|a| header_key(a)).collect();
        let unclaimed = aliases
            .iter()
            .find_map(|alias| (0..keys.len()).find(|&i| !claimed[i] && keys[i] == *alias));
        let shared = || {
            aliases
                .iter()
                .find_map(|alias| keys.iter().position(|k| k == alias))
        };
        let found = unclaimed.or_else(shared);
        if let Some(i) = found {
            claimed[i] = true;
        } else if field.required {
            missing_required.push(format!(
                "{} (accepted headers: {})",
                field.display_name(),
                field.headers.join(" / ")
            ));
        } else {
            missing.push(field.display_name());
        }
        columns.push(found.map_or(Input::Absent, Input::Column));
    }
    for (i, field) in schema.fields.iter().enumerate() {
        let Some(template) = &field.derive else {
            continue;
        };
        let parts = template_parts(template).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut pieces = Vec::with_capacity(parts.len());
        let mut absent = Vec::new();
        for part in parts {
            match part {
                TemplatePart::Text(t) => pieces.push(Piece::Text(t)),
                TemplatePart::Column(name) => {
                    // A file header first, else another field's column.
                    let key = header_key(&name);
                    let column = keys.iter().position(|k| *k == key).or_else(|| {
                        let j = schema.fields.iter().position(|f| f.name == name)?;
                        match columns[j] {
                            Input::Column(c) => Some(c),
                            _ => None,
                        }
                    });
                    match column {
                        Some(c) => {
                            claimed[c] = true;
                            pieces.push(Piece::Column(c));
                        }
                        None => absent.push(name),
                    }
                }
            }
        }
        if absent.is_empty() {
            columns[i] = Input::Derived(pieces);
        } else if field.required {
            missing_required.push(format!(
                "{} (derived from {template}; not found: {})",
                field.display_name(),
                absent.join(", ")
            ));
        } else {
            missing.push(field.display_name());
        }
    }
    if !missing_required.is_empty() {
        anyhow::bail!(
            "{file}: 缺少必需的列 (required column missing): {}; headers found: {}",
            missing_required.join("; "),
            headers.join(", ")
        );
    }
    let unmapped = headers
        .iter()
        .zip(&claimed)
        .filter(|(h, c)| !**c && !h.trim().is_empty())
        .map(|(h, _)| h.clone())
        .collect();
    Ok(ColumnMap {
        columns,
        unmapped,
        missing,
    })
}

/// Staged and quarantined rows finished as Arrow batches.
pub type Normalised = (Option<RecordBatch>, Option<RecordBatch>);

/// Accumulates rows of one file into staged and quarantine batches.
pub struct Normaliser {
    schema: Arc<SourceSchema>,
    columns: Vec<Input>,
    patterns: Vec<Option<regex::Regex>>,
    staged_schema: SchemaRef,
    batch_id: String,
    source_file: String,
    delimiter: char,
    staged_lines: Int64Builder,
    fields: Vec<FieldColumns>,
    issues: StringBuilder,
    quarantine: QuarantineBuilder,
    /// Rows staged so far.
    pub staged_rows: u64,
    /// Rows quarantined so far.
    pub quarantined_rows: u64,
}

struct QuarantineBuilder {
    line: Int64Builder,
    raw_text: StringBuilder,
    reasons: StringBuilder,
    failed_fields: StringBuilder,
}

impl Normaliser {
    /// A normaliser for `schema`, with `columns[i]` where field `i`'s text comes from.
    pub fn new(
        schema: Arc<SourceSchema>,
        columns: Vec<Input>,
        batch_id: &str,
        source_file: &str,
        delimiter: char,
    ) -> Self {
        let fields = schema
            .fields
            .iter()
            .map(|f| FieldColumns {
                value: ValueBuilder::new(f.kind),
                raw: StringBuilder::new(),
                valid: (f.role == Some(Role::IdNumber)).then(BooleanBuilder::new),
            })
            .collect();
        let patterns = schema
            .fields
            .iter()
            .map(|f| {
                f.pattern
                    .as_ref()
                    .map(|p| regex::Regex::new(&format!("^(?:{p})$")).expect("checked at load"))
            })
            .collect();
        Normaliser {
            staged_schema: staged_schema(&schema),
            schema,
            columns,
            patterns,
            batch_id: batch_id.to_string(),
            source_file: source_file.to_string(),
            delimiter,
            staged_lines: Int64Builder::new(),
            fields,
            issues: StringBuilder::new(),
            quarantine: QuarantineBuilder {
                line: Int64Builder::new(),
                raw_text: StringBuilder::new(),
                reasons: StringBuilder::new(),
                failed_fields: StringBuilder::new(),
            },
            staged_rows: 0,
            quarantined_rows: 0,
        }
    }

    /// The schema of the staged batches it builds.
    pub fn staged_schema(&self) -> &SchemaRef {
        &self.staged_schema
    }

    /// Normalise one row into the staged or the quarantine buffer.
    pub fn push(&mut self, row: RawRow) {
        if let Some(error) = &row.error {
            let raw = row
                .raw_text
                .clone()
                .unwrap_or_else(|| self.reconstruct(&row));
            self.push_quarantine(row.line, &raw, error, "");
            return;
        }
        let mut values = Vec::with_capacity(self.schema.fields.len());
        let mut reasons: Vec<String> = Vec::new();
        let mut failed: Vec<&str> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        // Every field's text first: a derived field's is made here, and the
        // values below borrow from it.
        let texts: Vec<Cow<'_, str>> = self.columns.iter().map(|c| c.text(&row.cells)).collect();
        for (i, field) in self.schema.fields.iter().enumerate() {
            let raw: &str = &texts[i];
            let (value, valid, problem) = normalise_value(field, raw, self.patterns[i].as_ref());
            if let Some(problem) = problem {
                let text = format!("{}: {problem}", field.display_name());
                if field.required {
                    reasons.push(text);
                    failed.push(&field.name);
                } else {
                    notes.push(text);
                }
            }
            values.push((value, valid, raw));
        }
        if !reasons.is_empty() {
            let raw = row
                .raw_text
                .clone()
                .unwrap_or_else(|| self.reconstruct(&row));
            let failed = failed.join(",");
            self.push_quarantine(row.line, &raw, &reasons.join("; "), &failed);
            return;
        }
        self.staged_lines.append_value(row.line as i64);
        for (columns, (value, valid, raw)) in self.fields.iter_mut().zip(values) {
            columns.value.append(value);
            if raw.is_empty() {
                columns.raw.append_null();
            } else {
                columns.raw.append_value(raw);
            }
            if let Some(b) = &mut columns.valid {
                b.append_option(valid);
            }
        }
        if notes.is_empty() {
            self.issues.append_null();
        } else {
            self.issues.append_value(notes.join("; "));
        }
        self.staged_rows += 1;
    }

    fn push_quarantine(&mut self, line: u64, raw: &str, reasons: &str, failed: &str) {
        let q = &mut self.quarantine;
        q.line.append_value(line as i64);
        q.raw_text.append_value(raw);
        q.reasons.append_value(reasons);
        q.failed_fields.append_value(failed);
        self.quarantined_rows += 1;
    }

    /// The row as a line of the file, for the quarantine's `raw_text`.
    fn reconstruct(&self, row: &RawRow) -> String {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter as u8)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let _ = writer.write_record(&row.cells);
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\n')
            .to_string()
    }

    /// Finish the buffered rows as (staged, quarantined) batches.
    pub fn take(&mut self) -> Result<Normalised> {
        let staged = if self.staged_lines.is_empty() {
            None
        } else {
            let n = self.staged_lines.len();
            let mut arrays: Vec<ArrayRef> = vec![
                constant(&self.batch_id, n),
                constant(&self.source_file, n),
                Arc::new(self.staged_lines.finish()),
            ];
            for columns in &mut self.fields {
                arrays.push(columns.value.finish());
                arrays.push(finish_text(&mut columns.raw));
                if let Some(b) = &mut columns.valid {
                    arrays.push(Arc::new(b.finish()));
                }
            }
            arrays.push(finish_text(&mut self.issues));
            Some(RecordBatch::try_new(self.staged_schema.clone(), arrays)?)
        };
        let quarantined = if self.quarantine.line.is_empty() {
            None
        } else {
            let q = &mut self.quarantine;
            let n = q.line.len();
            Some(RecordBatch::try_new(
                quarantine_schema(),
                vec![
                    constant(&self.batch_id, n),
                    constant(&self.source_file, n),
                    Arc::new(q.line.finish()),
                    Arc::new(q.raw_text.finish()),
                    Arc::new(q.reasons.finish()),
                    Arc::new(q.failed_fields.finish()),
                ],
            )?)
        };
        Ok((staged, quarantined))
    }
}

/// Finish a text column and start the next as large as this one was.
/// Chunks hold the same number of rows, so the next one fills without the
/// repeated doubling (and fresh, zeroed pages) of a builder grown from empty.
fn finish_text(builder: &mut StringBuilder) -> ArrayRef {
    let next = StringBuilder::with_capacity(builder.len(), builder.values_slice().len());
    Arc::new(std::mem::replace(builder, next).finish())
}

fn constant(value: &str, n: usize) -> ArrayRef {
    // A dictionary would be smaller in memory, but Delta stores plain strings.
    let mut b = StringBuilder::with_capacity(n, value.len() * n);
    for _ in 0..n {
        b.append_value(value);
    }
    Arc::new(b.finish())
}

/// Normalise one cell: (value, ID validity, problem).
fn normalise_value<'a>(
    field: &Field,
    raw: &'a str,
    pattern: Option<&regex::Regex>,
) -> (Value<'a>, Option<bool>, Option<String>) {
    if field.role == Some(Role::IdNumber) {
        return match normalise_id_number(raw) {
            None if field.required => (
                Value::Null,
                None,
                Some("必填字段为空 (required value is empty)".into()),
            ),
            None => (Value::Null, None, None),
            Some(id) => (Value::Text(Cow::Owned(id.value)), Some(id.valid), None),
        };
    }
    let text: Cow<'a, str> = if field.role == Some(Role::PersonName) {
        normalise_name_cow(raw)
    } else {
        normalise_text_cow(raw)
    };
    if is_blank(&text) {
        let problem = field
            .required
            .then(|| "必填字段为空 (required value is empty)".to_string());
        return (Value::Null, None, problem);
    }
    let mapped = if field.map.is_empty() {
        None
    } else {
        field.map.get(text.as_ref()).or_else(|| {
            text.bytes()
                .any(|b| b.is_ascii_uppercase())
                .then(|| field.map.get(&text.to_ascii_lowercase()))
                .flatten()
        })
    };
    let text = match mapped {
        Some(m) => Cow::Owned(m.clone()),
        None => text,
    };
    let checked = match field.kind {
        FieldType::String => match pattern {
            Some(p) if !p.is_match(&text) => Err(format!(
                "格式不符 (does not match pattern {}): '{text}'",
                field.pattern.as_deref().unwrap_or_default()
            )),
            _ => Ok(Value::Text(text)),
        },
        FieldType::Enum => {
            if field.values.iter().any(|v| v.as_str() == text.as_ref()) {
                Ok(Value::Text(text))
            } else {
                Err(format!(
                    "不在允许的取值中 (not one of {}): '{text}'",
                    field.values.join("/")
                ))
            }
        }
        FieldType::Integer => match parse_amount_cents(&text) {
            Ok(fen) if fen % 100 == 0 && (fen / 100).abs() <= i64::MAX as i128 => {
                let n = (fen / 100) as i64;
                check_range(field, n as f64, &text).map(|_| Value::Int(n))
            }
            _ => Err(format!("不是整数 (not a whole number): '{text}'")),
        },
        FieldType::Decimal => parse_amount_cents(&text).and_then(|fen| {
            if fen.abs() >= 10i128.pow(18) {
                return Err(format!("金额过大 (amount too large): '{text}'"));
            }
            check_range(field, fen as f64 / 100.0, &text).map(|_| Value::Fen(fen))
        }),
        FieldType::Date => parse_date(&text, &field.date_formats)
            .map(|d| Value::Date(chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAYS_FROM_CE)),
    };
    match checked {
        Ok(value) => (value, None, None),
        Err(problem) => (Value::Null, None, Some(problem)),
    }
}

fn check_range(field: &Field, value: f64, text: &str) -> Result<(), String> {
    if let Some(min) = field.min
        && value < min
    {
        return Err(format!("小于下限 {min} (below the minimum): '{text}'"));
    }
    if let Some(max) = field.max
        && value > max
    {
        return Err(format!("超过上限 {max} (above the maximum): '{text}'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{Date32Type, Decimal128Type};

    const SCHEMA: &str = r#"
name = "t"
key = "id"
[[field]]
name = "id"
headers = ["编号"]
required = true
[[field]]
name = "id_number"
role = "id_number"
headers = ["身份证号"]
[[field]]
name = "amount"
headers = ["金额"]
type = "decimal"
required = true
min = 0
[[field]]
name = "day"
headers = ["日期"]
type = "date"
[[field]]
name = "sex"
headers = ["性别"]
type = "enum"
values = ["男", "女"]
map = { "1" = "男", "2" = "女" }
"#;

    /// The text column `name` of `batch`.
    fn text<'a>(batch: &'a RecordBatch, name: &str) -> &'a datafusion::arrow::array::StringArray {
        batch.column_by_name(name).unwrap().as_string::<i32>()
    }

    fn row(line: u64, cells: &[&str]) -> RawRow {
        RawRow {
            line,
            cells: cells.iter().copied().collect(),
            error: None,
            raw_text: None,
        }
    }

    #[test]
    fn stages_good_rows_and_quarantines_bad_ones() {
        let schema = Arc::new(SourceSchema::parse(SCHEMA).unwrap());
        let headers: Vec<String> = ["日期", "金额", "编号", "身份证号", "性别", "备注"]
            .map(String::from)
            .into();
        let map = map_columns(&schema, &headers, "f.csv").unwrap();
        assert_eq!(map.unmapped, vec!["备注".to_string()]);
        let mut n = Normaliser::new(schema, map.columns, "b1", "f.csv", ',');
        n.push(row(
            2,
            &[
                "2026年8月14日",
                "1,234.5元",
                "A1",
                "11010519491231002x",
                "1",
                "",
            ],
        ));
        n.push(row(3, &["bad date", "-3", "", "", "男", ""]));
        n.push(row(4, &["", "7", "A3", "", "x", ""]));
        let (staged, quarantined) = n.take().unwrap();
        let staged = staged.unwrap();
        let quarantined = quarantined.unwrap();
        assert_eq!(staged.num_rows(), 2);
        assert_eq!(quarantined.num_rows(), 1);

        let amounts = staged
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Decimal128Type>();
        assert_eq!(amounts.value(0), 123_450);
        let days = staged
            .column_by_name("day")
            .unwrap()
            .as_primitive::<Date32Type>();
        assert_eq!(days.value(0), 20_679); // 2026-08-14
        let ids = text(&staged, "id_number");
        assert_eq!(ids.value(0), "11010519491231002X");
        let raw = text(&staged, "id_number_raw");
        assert_eq!(raw.value(0), "11010519491231002x");
        let sex = text(&staged, "sex");
        assert_eq!(sex.value(0), "男");
        // An optional bad value is staged as null with a note.
        assert!(sex.is_null(1));
        let issues = text(&staged, "issues");
        assert!(issues.value(1).contains("性别(sex)"), "{}", issues.value(1));

        let reasons = text(&quarantined, "reasons");
        assert!(
            reasons.value(0).contains("编号(id)"),
            "{}",
            reasons.value(0)
        );
        assert!(
            reasons.value(0).contains("金额(amount)"),
            "{}",
            reasons.value(0)
        );
        let raw_text = text(&quarantined, "raw_text");
        assert_eq!(raw_text.value(0), "bad date,-3,,,男,");
        let failed = text(&quarantined, "failed_fields");
        assert_eq!(failed.value(0), "id,amount");
    }

    #[test]
    fn missing_required_column_names_file_field_and_headers() {
        let schema = SourceSchema::parse(SCHEMA).unwrap();
        let headers: Vec<String> = ["日期", "编号"].map(String::from).into();
        let err = map_columns(&schema, &headers, "county.csv")
            .unwrap_err()
            .to_string();
        assert!(err.contains("county.csv"), "{err}");
        assert!(err.contains("金额(amount)"), "{err}");
        assert!(err.contains("headers found: 日期, 编号"), "{err}");
    }

    const DERIVED: &str = r#"
name = "t"
key = "id"
[[field]]
name = "id"
headers = ["编号"]
required = true
[[field]]
name = "birth_date"
type = "date"
required = true
derive = "{出生年}-{出生月}-{出生日}"
[[field]]
name = "region_code"
derive = "{county}{乡镇代码}"
[[field]]
name = "county"
headers = ["县代码"]
"#;

    /// A derived field is made from several columns (a header or another
    /// field), then read and checked like any other; empty when a part is.
    #[test]
    fn a_derived_field_is_made_from_other_columns_and_checked() {
        let schema = Arc::new(SourceSchema::parse(DERIVED).unwrap());
        let headers: Vec<String> = ["编号", "出生年", "出生月", "出生日", "县代码", "乡镇代码"]
            .map(String::from)
            .into();
        let map = map_columns(&schema, &headers, "f.csv").unwrap();
        assert!(map.unmapped.is_empty(), "{:?}", map.unmapped);
        let mut n = Normaliser::new(schema.clone(), map.columns, "b1", "f.csv", ',');
        n.push(row(2, &["A1", "2012", "3", "9", "522322", "101"]));
        n.push(row(3, &["A2", "2012", "", "9", "522322", ""]));
        n.push(row(4, &["A3", "2012", "13", "9", "522322", "102"]));
        let (staged, quarantined) = n.take().unwrap();
        let staged = staged.unwrap();
        assert_eq!(staged.num_rows(), 1);
        let day = staged
            .column_by_name("birth_date")
            .unwrap()
            .as_primitive::<Date32Type>()
            .value(0);
        assert_eq!(
            chrono::NaiveDate::from_num_days_from_ce_opt(day + 719_163),
            chrono::NaiveDate::from_ymd_opt(2012, 3, 9)
        );
        let region = text(&staged, "region_code");
        assert_eq!(region.value(0), "522322101");
        let raw = text(&staged, "birth_date_raw");
        assert_eq!(raw.value(0), "2012-3-9");
        // A missing month leaves the required date empty; month 13 is no date.
        let reasons = quarantined.unwrap();
        let reasons = text(&reasons, "reasons");
        assert!(
            reasons.value(0).contains("birth_date"),
            "{}",
            reasons.value(0)
        );
        assert!(
            reasons.value(1).contains("birth_date"),
            "{}",
            reasons.value(1)
        );

        // A file without one of its columns: a required derived field is
        // refused naming what is missing; an optional one is reported.
        let headers: Vec<String> = ["编号", "出生年", "出生日", "县代码"]
            .map(String::from)
            .into();
        let err = map_columns(&schema, &headers, "f.csv")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("birth_date") && err.contains("出生月"),
            "{err}"
        );
        let headers: Vec<String> = ["编号", "出生年", "出生月", "出生日"]
            .map(String::from)
            .into();
        let map = map_columns(&schema, &headers, "f.csv").unwrap();
        assert!(
            map.missing.iter().any(|m| m.contains("region_code")),
            "{:?}",
            map.missing
        );
    }

    #[test]
    fn a_bad_derive_template_is_refused_when_the_schema_loads() {
        for (template, expected) in [
            ("{出生年", "without"),
            ("出生年}", "without"),
            ("plain text", "names no"),
            ("{}", "empty"),
        ] {
            let text = DERIVED.replace("{出生年}-{出生月}-{出生日}", template);
            let err = format!("{:#}", SourceSchema::parse(&text).unwrap_err());
            assert!(
                err.contains("birth_date") && err.contains(expected),
                "{template}: {err}"
            );
        }
        let both = DERIVED.replace(
            "type = \"date\"\nrequired",
            "headers = [\"出生\"]\ntype = \"date\"\nrequired",
        );
        let err = format!("{:#}", SourceSchema::parse(&both).unwrap_err());
        assert!(err.contains("both headers and derive"), "{err}");
    }
}
