//! Source schemas: how one department's extract maps onto canonical fields.
//!
//! A schema lists fields; each has the headers departments use for it (any
//! of them may appear), a type, an optional role that later stages rely on,
//! and value checks. See `docs/schemas.md` for the format.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::identity::text::normalise_text;

/// A source's schema file: its fields, the headers that feed each, and how values are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSchema {
    /// Source name; tables are `staged_<name>` and `quarantine_<name>`.
    pub name: super::SourceName,
    /// Human title shown in summaries (e.g. "医保结算").
    #[serde(default)]
    pub title: Option<String>,
    /// Department that sends the extract (民政, 医保, 教育, 人社, …).
    #[serde(default)]
    pub department: Option<String>,
    /// Field that identifies a record within the source.
    pub key: String,
    /// "auto" (default: UTF-8 with or without BOM, else GB18030), "utf-8",
    /// "gb18030" or "gbk".
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Field delimiter for text files; default "," (and tab for .tsv).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// Worksheet to read from XLSX files; default the first.
    #[serde(default)]
    pub sheet: Option<String>,
    /// 1-based row that holds the headers (exports sometimes put a title above).
    #[serde(default = "default_header_row")]
    pub header_row: usize,
    /// The `[[field]]` sections.
    #[serde(rename = "field")]
    pub fields: Vec<Field>,
    /// The file's text as read: what the lake records (`source_schemas`).
    #[serde(skip)]
    pub text: String,
}

/// One field: the headers it reads, its type, and its checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Canonical column name in the lake.
    pub name: String,
    /// What a clerk calls it, for messages (defaults to the first header).
    #[serde(default)]
    pub title: Option<String>,
    /// Headers that mean this field, in any extract.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Instead of headers: the field's text made from other columns, each
    /// `{name}` a file header or another field (`"{出生年}-{出生月}-{出生日}"`).
    /// It is then read like any other field; empty when any part is empty.
    #[serde(default)]
    pub derive: Option<String>,
    /// The value's type (default string).
    #[serde(rename = "type", default)]
    pub kind: FieldType,
    /// What the field means to later stages, if anything.
    #[serde(default)]
    pub role: Option<Role>,
    /// Whether a row without a value is quarantined.
    #[serde(default)]
    pub required: bool,
    /// Allowed values after mapping (for `enum`).
    #[serde(default)]
    pub values: Vec<String>,
    /// Spellings mapped to a canonical value before checking (e.g. "1" = "男").
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Inclusive bounds for integer and decimal fields.
    #[serde(default)]
    pub min: Option<f64>,
    /// Inclusive upper bound for integer and decimal fields.
    #[serde(default)]
    pub max: Option<f64>,
    /// Regular expression a string value must match in full.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Extra chrono date formats to try first (e.g. "%d/%m/%Y").
    #[serde(default)]
    pub date_formats: Vec<String>,
}

/// A field's type in the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Text, kept as written after trimming.
    #[default]
    String,
    /// A whole number.
    Integer,
    /// Money in yuan, stored as decimal(18,2).
    Decimal,
    /// A day, read from the common Chinese spellings and Excel serials.
    Date,
    /// One of `values`, after `map`.
    Enum,
}

/// What a field means to later stages (linking, warnings, the roster split).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The record's key within the source.
    RecordKey,
    /// The person's name.
    PersonName,
    /// The 18-digit citizen ID number (身份证号).
    IdNumber,
    /// Gender.
    Gender,
    /// Date of birth.
    BirthDate,
    /// Administrative code of where the person lives.
    RegionCode,
    /// The day the recorded event happened.
    EventDate,
    /// The amount of money the record is about.
    Amount,
    /// The household's key (roster).
    HouseholdKey,
    /// Relation to the head of the household (roster).
    Relation,
}

fn default_encoding() -> String {
    "auto".into()
}
fn default_header_row() -> usize {
    1
}

impl Field {
    /// The name a clerk knows the field by.
    pub fn display_name(&self) -> String {
        let title = self
            .title
            .clone()
            .or_else(|| self.headers.first().cloned())
            .unwrap_or_default();
        format!("{title}({})", self.name)
    }
}

impl SourceSchema {
    /// Read and check a schema file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read schema file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in schema file {}", path.display()))
    }

    /// Parse and check a schema file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let mut schema: SourceSchema = toml::from_str(text)?;
        schema.text = text.to_string();
        schema.check()?;
        Ok(schema)
    }

    fn check(&self) -> Result<()> {
        let mut names = HashSet::new();
        for field in &self.fields {
            // Field names become column names in SQL the stages write.
            if !is_column_name(&field.name) {
                bail!(
                    "field name '{}' must start with a lower-case letter and hold only lower-case letters, digits and _ (it names a lake column)",
                    field.name
                );
            }
            if !names.insert(field.name.as_str()) {
                bail!("field '{}' is defined twice", field.name);
            }
            match (&field.derive, field.headers.is_empty()) {
                (None, true) => bail!("field '{}' lists no headers", field.name),
                (Some(_), false) => bail!(
                    "field '{}' has both headers and derive; give one",
                    field.name
                ),
                (Some(template), true) => {
                    template_parts(template)
                        .map_err(|e| anyhow::anyhow!("field '{}': derive: {e}", field.name))?;
                }
                (None, false) => {}
            }
            if field.kind == FieldType::Enum && field.values.is_empty() {
                bail!("enum field '{}' lists no values", field.name);
            }
            if let Some(p) = &field.pattern {
                regex::Regex::new(p)
                    .with_context(|| format!("field '{}': bad pattern {p:?}", field.name))?;
            }
            for reserved in ["batch_id", "source_file", "line", "issues"] {
                if field.name == reserved || field.name.ends_with("_raw") {
                    bail!(
                        "field name '{}' is reserved (batch_id, source_file, line, issues, *_raw)",
                        field.name
                    );
                }
            }
        }
        if !names.contains(self.key.as_str()) {
            bail!("key '{}' is not one of the fields", self.key);
        }
        if !["auto", "utf-8", "utf8", "gb18030", "gbk"]
            .contains(&self.encoding.to_lowercase().as_str())
        {
            bail!(
                "encoding '{}' is not one of auto, utf-8, gb18030, gbk",
                self.encoding
            );
        }
        if self.header_row == 0 {
            bail!("header_row counts from 1");
        }
        Ok(())
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The first field with `role`, if any.
    pub fn field_with_role(&self, role: Role) -> Option<&Field> {
        self.fields.iter().find(|f| f.role == Some(role))
    }
}

/// One piece of a `derive` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text copied as it is.
    Text(String),
    /// `{name}`: a file header or another field.
    Column(String),
}

/// The pieces of a `derive` template; at least one `{name}`, braces
/// balanced.
pub fn template_parts(template: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err(format!("'}}' without '{{' in {template:?}"));
        }
        if open > 0 {
            parts.push(TemplatePart::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("'{{' without '}}' in {template:?}"));
        };
        let name = rest[open + 1..open + close].trim();
        if name.is_empty() || name.contains('{') {
            return Err(format!("an empty or nested {{}} in {template:?}"));
        }
        parts.push(TemplatePart::Column(name.to_string()));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest.to_string()));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Column(_))) {
        return Err(format!("{template:?} names no {{column}}"));
    }
    Ok(parts)
}

/// A name usable as a lake column without quoting: a lower-case letter,
/// then lower-case letters, digits and `_`.
pub fn is_column_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Header text compared loosely: NFKC, no whitespace, ASCII lower-case, and
/// a trailing "(元)" or "（元）" unit ignored.
pub fn header_key(header: &str) -> String {
    let text = normalise_text(header.trim_start_matches('\u{feff}'));
    let mut key: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    key.make_ascii_lowercase();
    for unit in ["(元)", "(单位:元)"] {
        if let Some(stripped) = key.strip_suffix(unit) {
            key = stripped.to_string();
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_schemas_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let schema = SourceSchema::load(&path).unwrap();
                assert_eq!(
                    path.file_stem().unwrap().to_str().unwrap(),
                    schema.name.as_str(),
                    "file name matches source name"
                );
                count += 1;
            }
        }
        assert!(count >= 5);
    }

    #[test]
    fn bad_schemas_are_explained() {
        let err = SourceSchema::parse("name='x'\nkey='k'\n[[field]]\nname='a'\nheaders=['A']\n")
            .unwrap_err();
        assert!(err.to_string().contains("key 'k'"), "{err}");
        let err = SourceSchema::parse(
            "name='x'\nkey='a'\n[[field]]\nname='a'\nheaders=['A']\ntype='money'\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("money"), "{err:#}");
        for bad in ["Name", "self paid", "a'b", "1st", ""] {
            let err = SourceSchema::parse(&format!(
                "name='x'\nkey='k'\n[[field]]\nname='k'\nheaders=['K']\n[[field]]\nname=\"{bad}\"\nheaders=['A']\n"
            ))
            .unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("field name '{bad}' must start")),
                "{err}"
            );
        }
    }

    #[test]
    fn header_matching_is_loose() {
        assert_eq!(header_key("\u{feff} 个人自付（元） "), "个人自付");
        assert_eq!(header_key("Self Paid"), "selfpaid");
    }
}
