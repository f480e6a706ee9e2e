//! `sn_level_exact(value, candidate)`: any value compared as text.

use datafusion::logical_expr::ScalarUDF;

use crate::functions::level_udf;

/// The function's name in SQL.
pub const NAME: &str = "sn_level_exact";

/// The SQL function: 1 equal, 2 different.
pub fn udf() -> ScalarUDF {
    level_udf(
        NAME,
        2,
        &[],
        |v| u8::from(v[0] != v[1]) + 1,
        "Exact agreement of two values as text: 1 equal, 2 different; 0 missing.",
        "sn_level_exact(CAST(l.x AS VARCHAR), CAST(r.x AS VARCHAR))",
    )
}
