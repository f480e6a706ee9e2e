//! `sn_level_string(metric, thresholds, value, candidate)`: generic string
//! comparison with thresholds.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use super::parse_thresholds;
use crate::functions::{arrays, documented, utf8};

/// The function's name in SQL.
pub const NAME: &str = "sn_level_string";

/// How two strings are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Similarity 0..1; a level holds when similarity ≥ its threshold.
    JaroWinkler,
    /// Edits; a level holds when the distance ≤ its threshold.
    Levenshtein,
    /// Edits counting a swap of neighbours as one.
    DamerauLevenshtein,
}

impl Metric {
    /// The name the SQL function takes as its first argument.
    pub fn name(self) -> &'static str {
        match self {
            Metric::JaroWinkler => "jaro_winkler",
            Metric::Levenshtein => "levenshtein",
            Metric::DamerauLevenshtein => "damerau_levenshtein",
        }
    }

    fn parse(text: &str) -> Option<Metric> {
        [
            Metric::JaroWinkler,
            Metric::Levenshtein,
            Metric::DamerauLevenshtein,
        ]
        .into_iter()
        .find(|m| m.name() == text)
    }
}

/// Level 1 exact, then one level per threshold, then different.
pub fn level(metric: Metric, left: &str, right: &str, thresholds: &[f64]) -> u8 {
    if left == right {
        return 1;
    }
    for (i, t) in thresholds.iter().enumerate() {
        let hit = match metric {
            Metric::JaroWinkler => strsim::jaro_winkler(left, right) >= *t,
            Metric::Levenshtein => strsim::levenshtein(left, right) as f64 <= *t,
            Metric::DamerauLevenshtein => strsim::damerau_levenshtein(left, right) as f64 <= *t,
        };
        if hit {
            return i as u8 + 2;
        }
    }
    thresholds.len() as u8 + 2
}

/// The SQL function; an unknown metric compares exactly.
pub fn udf() -> ScalarUDF {
    let udf = create_udf(
        NAME,
        vec![DataType::Utf8; 4],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let columns: Vec<ArrayRef> = arrays(args)?.iter().map(utf8).collect::<Result<_>>()?;
            let s: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
            let metric = Metric::parse(s[0].value(0));
            let thresholds = parse_thresholds(s[1].value(0));
            let out: Int32Array = (0..s[2].len())
                .map(|i| {
                    Some(if s[2].is_null(i) || s[3].is_null(i) {
                        0
                    } else {
                        let (l, r) = (s[2].value(i), s[3].value(i));
                        i32::from(match metric {
                            Some(m) => level(m, l, r, &thresholds),
                            None => u8::from(l != r) + 1,
                        })
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    documented(
        udf,
        "String agreement by a metric (jaro_winkler, levenshtein, damerau_levenshtein): 1 exact, then one level per threshold, then different; 0 missing.",
        "sn_level_string('jaro_winkler', '0.95,0.88', l.surname, r.surname)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_levels() {
        assert_eq!(
            level(Metric::JaroWinkler, "martha", "marhta", &[0.95, 0.9]),
            2
        );
        assert_eq!(
            level(Metric::Levenshtein, "kitten", "sitting", &[1.0, 3.0]),
            3
        );
        assert_eq!(level(Metric::DamerauLevenshtein, "ab", "ba", &[1.0]), 2);
    }
}
