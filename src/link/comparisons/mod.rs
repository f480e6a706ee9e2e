//! Comparison kinds, one type each (`<kind>.rs`): its level labels, the
//! SQL that computes its level for a pair of `l` (the record) and `r` (the
//! registry person), and the SQL function behind it (in
//! `functions::levels`). A settings file names a kind; everything the
//! linker needs to know about it is asked of its type.

mod chinese_name;
mod date;
mod date_distance;
mod exact;
mod gender;
mod id_number;
mod numeric_difference;
mod region;
mod string;

use datafusion::logical_expr::ScalarUDF;

use super::settings::Comparison;
pub(crate) use id_number::ID_NUMBER_LEVEL;

/// The comparison kinds a settings file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Resident ID numbers, typo- and legacy-aware.
    IdNumber,
    /// Chinese names: simplified, pinyin, look-alike characters.
    ChineseName,
    /// Dates such as birth dates: a slip of the pen, the same year.
    Date,
    /// 男 / 女.
    Gender,
    /// Administrative codes, village down to province.
    Region,
    /// Any value, equal or not.
    Exact,
    /// Strings by Jaro–Winkler similarity thresholds.
    JaroWinkler,
    /// Strings by edit-distance thresholds.
    Levenshtein,
    /// Strings by edit distance with swaps.
    DamerauLevenshtein,
    /// Dates by days apart.
    DateDistance,
    /// Numbers by difference.
    NumericDifference,
}

/// What one kind of comparison knows.
pub trait ComparisonKind: Sync {
    /// Level labels, best first (index 0 is level 1).
    fn labels(&self, c: &Comparison) -> Vec<String>;
    /// The SQL expression giving the comparison's level for a pair.
    fn level_sql(&self, c: &Comparison) -> String;
    /// The SQL function the level expression calls.
    fn udf(&self) -> ScalarUDF;
    /// The registry column whose value frequency adjusts the comparison.
    fn term_frequency_column(&self, c: &Comparison) -> String {
        column(c, "name")
    }
    /// The levels that count as agreeing on the value, for term frequency.
    fn agreeing_levels(&self) -> &'static [u8] {
        &[1]
    }
}

impl Kind {
    /// The type that knows this kind.
    pub fn behaviour(self) -> &'static dyn ComparisonKind {
        match self {
            Kind::IdNumber => &id_number::IdNumber,
            Kind::ChineseName => &chinese_name::ChineseName,
            Kind::Date => &date::Date,
            Kind::Gender => &gender::Gender,
            Kind::Region => &region::Region,
            Kind::Exact => &exact::Exact,
            Kind::JaroWinkler => &string::JARO_WINKLER,
            Kind::Levenshtein => &string::LEVENSHTEIN,
            Kind::DamerauLevenshtein => &string::DAMERAU_LEVENSHTEIN,
            Kind::DateDistance => &date_distance::DateDistance,
            Kind::NumericDifference => &numeric_difference::NumericDifference,
        }
    }
}

/// The comparison's own column, or the kind's standard column.
fn column(c: &Comparison, default: &str) -> String {
    c.column.clone().unwrap_or_else(|| default.to_string())
}

/// Thresholds as the generic functions take them: "0.9,0.8".
fn thresholds_text(c: &Comparison) -> String {
    c.thresholds
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels of a thresholded kind: exact, one per threshold, different.
fn threshold_labels(c: &Comparison, label: impl Fn(f64) -> String) -> Vec<String> {
    let mut labels = vec!["exact".to_string()];
    labels.extend(c.thresholds.iter().map(|t| label(*t)));
    labels.push("different".into());
    labels
}

fn fixed(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

impl Comparison {
    /// The SQL expression giving this comparison's level for a pair.
    pub fn level_sql(&self) -> String {
        self.kind.behaviour().level_sql(self)
    }

    /// Level labels, best first.
    pub fn labels(&self) -> Vec<String> {
        self.kind.behaviour().labels(self)
    }

    /// The registry column whose value frequency adjusts this comparison.
    pub fn tf_column(&self) -> String {
        self.kind.behaviour().term_frequency_column(self)
    }

    /// The agreeing levels for term frequency, as SQL: `(1, 2)`.
    pub fn tf_levels_sql(&self) -> String {
        let levels: Vec<String> = self
            .kind
            .behaviour()
            .agreeing_levels()
            .iter()
            .map(u8::to_string)
            .collect();
        format!("({})", levels.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison(kind: Kind, column: Option<&str>, thresholds: &[f64]) -> Comparison {
        Comparison {
            name: "c".into(),
            kind,
            column: column.map(str::to_string),
            thresholds: thresholds.to_vec(),
            term_frequency: false,
        }
    }

    /// The SQL each kind writes, pinned: a change here changes every link.
    #[test]
    fn level_sql_is_pinned() {
        let cases = [
            (
                comparison(Kind::IdNumber, None, &[]),
                "sn_level_id_number(l.id_number, l.id_number_raw, r.id_number)",
            ),
            (
                comparison(Kind::ChineseName, None, &[]),
                "sn_level_chinese_name_keys(l.name, r.name, l.name_key, r.name_key, l.name_pinyin, r.name_pinyin)",
            ),
            (
                comparison(Kind::ChineseName, Some("surname"), &[]),
                "sn_level_chinese_name(l.surname, r.surname)",
            ),
            (
                comparison(Kind::Date, None, &[]),
                "CASE WHEN l.birth_date_from_id AND sn_level_id_number(l.id_number, l.id_number_raw, r.id_number) IN (4, 5) THEN 0 ELSE sn_level_date(l.birth_date, r.birth_date) END",
            ),
            (
                comparison(Kind::Region, None, &[]),
                "sn_level_region(l.region_code, r.region_code)",
            ),
            (
                comparison(Kind::JaroWinkler, Some("given_name"), &[0.9, 0.8]),
                "sn_level_string('jaro_winkler', '0.9,0.8', CAST(l.given_name AS VARCHAR), CAST(r.given_name AS VARCHAR))",
            ),
            (
                comparison(Kind::DateDistance, Some("dob"), &[30.0]),
                "sn_level_number('30', CAST(CAST(l.dob AS DATE) AS INT), CAST(CAST(r.dob AS DATE) AS INT))",
            ),
        ];
        for (c, sql) in cases {
            assert_eq!(c.level_sql(), sql, "{:?}", c.kind);
        }
    }

    #[test]
    fn labels_and_term_frequency() {
        assert_eq!(
            comparison(Kind::JaroWinkler, None, &[0.9]).labels(),
            vec!["exact", "jaro_winkler_0.9", "different"]
        );
        assert_eq!(comparison(Kind::IdNumber, None, &[]).labels().len(), 6);
        let name = comparison(Kind::ChineseName, None, &[]);
        assert_eq!(name.tf_column(), "name_key");
        assert_eq!(name.tf_levels_sql(), "(1, 2)");
        assert_eq!(
            comparison(Kind::Exact, Some("postcode"), &[]).tf_levels_sql(),
            "(1)"
        );
    }
}
