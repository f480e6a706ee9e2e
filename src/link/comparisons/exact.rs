//! Any value, equal or not.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, fixed};
use crate::functions::levels::exact;
use crate::link::settings::Comparison;

pub struct Exact;

impl ComparisonKind for Exact {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&["exact", "different"])
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let c = column(c, "name");
        format!(
            "{}(CAST(l.{c} AS VARCHAR), CAST(r.{c} AS VARCHAR))",
            exact::NAME
        )
    }

    fn udf(&self) -> ScalarUDF {
        exact::udf()
    }
}
