//! Administrative codes.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, column, fixed};
use crate::functions::levels::region;
use crate::link::settings::Comparison;

pub struct Region;

impl ComparisonKind for Region {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&[
            "same_village",
            "same_township",
            "same_county",
            "same_county_other_township",
            "same_prefecture",
            "same_province",
            "different",
        ])
    }

    fn level_sql(&self, c: &Comparison) -> String {
        let c = column(c, "region_code");
        format!("{}(l.{c}, r.{c})", region::NAME)
    }

    fn udf(&self) -> ScalarUDF {
        region::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        column(c, "region_code")
    }
}
