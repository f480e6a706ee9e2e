//! Resident ID numbers.

use datafusion::logical_expr::ScalarUDF;

use super::{ComparisonKind, fixed};
use crate::functions::levels::id_number;
use crate::link::settings::Comparison;

/// The ID number comparison's level for a pair (4 and 5 are the near
/// levels: one typo or swap, the same first 14 characters). The birth-date
/// comparison reads it too.
pub(crate) const ID_NUMBER_LEVEL: &str =
    "sn_level_id_number(l.id_number, l.id_number_raw, r.id_number)";

pub struct IdNumber;

impl ComparisonKind for IdNumber {
    fn labels(&self, _: &Comparison) -> Vec<String> {
        fixed(&[
            "exact",
            "legacy_15",
            "normalised",
            "one_typo_or_swap",
            "region_and_birth",
            "different",
        ])
    }

    fn level_sql(&self, _: &Comparison) -> String {
        ID_NUMBER_LEVEL.into()
    }

    fn udf(&self) -> ScalarUDF {
        id_number::udf()
    }

    fn term_frequency_column(&self, c: &Comparison) -> String {
        super::column(c, "id_number")
    }
}
