//! Dates such as birth dates.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, ID_NUMBER_LEVEL, fixed};
use crate::functions::levels::date;
use crate::link::settings::Comparison;

pub struct Date;

impl ComparisonKind for Date {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&["exact", "one_part_differs", "same_year", "different"])
    }

    fn level_sql(&self, c: &Comparison) -> String {
        match &c.column {
            Some(col) => format!("{}(l.{col}, r.{col})", date::NAME),
            // A birth date read from the record's own damaged ID number is
            // the same evidence as that number being near the candidate's
            // (one typo, or the same first 14 characters): counting it
            // twice made namesakes born the same day in the county
            // outscore the true person. It counts only when the numbers
            // are not near.
            None => format!(
                "CASE WHEN l.birth_date_from_id AND {ID_NUMBER_LEVEL} IN (4, 5) \
                 THEN 0 ELSE {}(l.birth_date, r.birth_date) END",
                date::NAME
            ),
        }
    }

    fn udf(&self) -> ScalarUDF {
        date::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        super::column(c, "birth_date")
    }
}
