//! Numbers by their difference.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, threshold_labels, thresholds_text};
use crate::functions::levels::number;
use crate::link::settings::Comparison;

pub struct NumericDifference;

impl ComparisonKind for NumericDifference {
    fn labels(&self, c: &Comparison) -> Vec<String> {
        threshold_labels(c, |t| format!("within_{t}"))
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let col = column(c, "amount");
        format!(
            "{}('{}', CAST(l.{col} AS DOUBLE), CAST(r.{col} AS DOUBLE))",
            number::NAME,
            thresholds_text(c)
        )
    }

    fn udf(&self) -> ScalarUDF {
        number::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        column(c, "amount")
    }
}
