//! Strings by a similarity or edit-distance metric and thresholds.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, threshold_labels, thresholds_text};
use crate::functions::levels::string::{self, Metric};
use crate::link::settings::Comparison;

pub struct StringMetric(Metric);

pub const JARO_WINKLER: StringMetric = StringMetric(Metric::JaroWinkler);
pub const LEVENSHTEIN: StringMetric = StringMetric(Metric::Levenshtein);
pub const DAMERAU_LEVENSHTEIN: StringMetric = StringMetric(Metric::DamerauLevenshtein);

impl ComparisonKind for StringMetric {
    fn labels(&self, c: &Comparison) -> Vec<String> {
        let metric = self.0.name();
        threshold_labels(c, |t| format!("{metric}_{t}"))
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let col = column(c, "name");
        format!(
            "{}('{}', '{}', CAST(l.{col} AS VARCHAR), CAST(r.{col} AS VARCHAR))",
            string::NAME,
            self.0.name(),
            thresholds_text(c)
        )
    }

    fn udf(&self) -> ScalarUDF {
        string::udf()
    }
}
