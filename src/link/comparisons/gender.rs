//! 男 / 女.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, fixed};
use crate::functions::levels::gender;
use crate::link::settings::Comparison;

pub struct Gender;

impl ComparisonKind for Gender {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&["same", "different"])
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let c = column(c, "gender");
        format!("{}(l.{c}, r.{c})", gender::NAME)
    }

    fn udf(&self) -> ScalarUDF {
        gender::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        column(c, "gender")
    }
}
