//! Comparison levels: given a record's value and a candidate's, how well
//! they agree, 1 = best. Level 0 means "no information" (a value is
//! missing) and carries no weight. One file per kind, each with its pure
//! rule and its SQL function; the linker's `link::comparisons` says which
//! level is called what and how the SQL is written.

pub mod chinese_name;
pub mod date;
pub mod exact;
pub mod gender;
pub mod id_number;
pub mod number;
pub mod region;
pub mod string;

use datafusion::logical_expr::ScalarUDF;

/// Every level function.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        id_number::udf(),
        chinese_name::udf(),
        chinese_name::keys_udf(),
        date::udf(),
        gender::udf(),
        region::udf(),
        exact::udf(),
        string::udf(),
        number::udf(),
    ]
}

/// "0.9,0.8" as numbers; what does not parse is left out.
pub fn parse_thresholds(text: &str) -> Vec<f64> {
    text.split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect()
}
