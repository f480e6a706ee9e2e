//! `sn_level_number(thresholds, value, candidate)`: numbers (and dates as
//! day numbers).

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Float64Array, Int32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use super::parse_thresholds;
use crate::functions::{arrays, documented, utf8};

/// The function's name in SQL.
pub const NAME: &str = "sn_level_number";

/// Level 1 exact, then one level per threshold t (|difference| ≤ t), then
/// different.
pub fn level(left: f64, right: f64, thresholds: &[f64]) -> u8 {
    if left == right {
        return 1;
    }
    for (i, t) in thresholds.iter().enumerate() {
        if (left - right).abs() <= *t {
            return i as u8 + 2;
        }
    }
    thresholds.len() as u8 + 2
}

/// The SQL function.
pub fn udf() -> ScalarUDF {
    let udf = create_udf(
        NAME,
        vec![DataType::Utf8, DataType::Float64, DataType::Float64],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let thresholds = parse_thresholds(utf8(&a[0])?.as_string::<i32>().value(0));
            let l = cast(&a[1], &DataType::Float64)?;
            let r = cast(&a[2], &DataType::Float64)?;
            let (l, r): (&Float64Array, &Float64Array) = (l.as_primitive(), r.as_primitive());
            let out: Int32Array = l
                .iter()
                .zip(r.iter())
                .map(|(x, y)| {
                    Some(
                        x.zip(y)
                            .map_or(0, |(x, y)| i32::from(level(x, y, &thresholds))),
                    )
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    documented(
        udf,
        "Numeric agreement: 1 exact, then one level per threshold (|difference| <= t), then different; 0 missing.",
        "sn_level_number('1,5', l.amount, r.amount)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_levels() {
        assert_eq!(level(100.0, 103.0, &[1.0, 5.0]), 3);
        assert_eq!(level(2.0, 2.0, &[]), 1);
        assert_eq!(level(2.0, 9.0, &[1.0]), 3);
    }
}
