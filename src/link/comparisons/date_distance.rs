//! Dates by how many days apart they are.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, threshold_labels, thresholds_text};
use crate::functions::levels::number;
use crate::link::settings::Comparison;

pub struct DateDistance;

impl ComparisonKind for DateDistance {
    fn labels(&self, c: &Comparison) -> Vec<String> {
        threshold_labels(c, |t| format!("within_{t}_days"))
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let col = column(c, "birth_date");
        format!(
            "{}('{}', CAST(CAST(l.{col} AS DATE) AS INT), CAST(CAST(r.{col} AS DATE) AS INT))",
            number::NAME,
            thresholds_text(c)
        )
    }

    fn udf(&self) -> ScalarUDF {
        number::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        column(c, "birth_date")
    }
}
