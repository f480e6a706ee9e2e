//! Chinese names.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, fixed};
use crate::functions::levels::chinese_name;
use crate::link::settings::Comparison;

pub struct ChineseName;

impl ComparisonKind for ChineseName {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&[
            "exact",
            "simplified_or_separator",
            "same_pinyin",
            "look_alike",
            "one_char_dropped",
            "jaro_winkler_0.88",
            "different",
        ])
    }

    fn level_sql(&self, c: &Comparison) -> String {
        match &c.column {
            Some(col) => format!("{}(l.{col}, r.{col})", chinese_name::NAME),
            // The standard name column comes with its keys precomputed.
            None => format!(
                "{}(l.name, r.name, l.name_key, r.name_key, l.name_pinyin, r.name_pinyin)",
                chinese_name::KEYS_NAME
            ),
        }
    }

    fn udf(&self) -> ScalarUDF {
        chinese_name::keys_udf()
    }

    /// The standard name is counted by its key, so 陳麗 and 陈丽 are one
    /// value.
    fn term_frequency_column(&self, c: &Comparison) -> String {
        c.column.clone().unwrap_or_else(|| "name_key".into())
    }

    /// Exact and simplified agreement both agree on the value.
    fn agreeing_levels(&self) -> &'static [u8] {
        &[1, 2]
    }
}
