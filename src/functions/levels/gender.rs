//! `sn_level_gender(gender, candidate)`.

use datafusion::logical_expr::ScalarUDF;

use crate::functions::level_udf;

/// The function's name in SQL.
pub const NAME: &str = "sn_level_gender";

/// Levels: 1 the same, 2 different.
pub fn level(left: &str, right: &str) -> u8 {
    if left == right { 1 } else { 2 }
}

/// The SQL function.
pub fn udf() -> ScalarUDF {
    level_udf(
        NAME,
        2,
        &[],
        |v| level(v[0].unwrap_or_default(), v[1].unwrap_or_default()),
        "Gender agreement: 1 same, 2 different; 0 missing.",
        "sn_level_gender(l.gender, r.gender)",
    )
}
