//! `sn_level_date(date, candidate)`: dates such as birth dates.

use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{AsArray, Int32Array};
use datafusion::arrow::datatypes::{DataType, Date32Type};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use crate::functions::id_numbers::date_of;
use crate::functions::{arrays, documented};

/// The function's name in SQL.
pub const NAME: &str = "sn_level_date";

/// Levels: 1 exact; 2 one of year, month or day differs (or month and day
/// are swapped), as a slip of the pen does; 3 the same year; 4 different.
pub fn level(left: NaiveDate, right: NaiveDate) -> u8 {
    if left == right {
        return 1;
    }
    let same = [
        left.year() == right.year(),
        left.month() == right.month(),
        left.day() == right.day(),
    ];
    let swapped =
        left.year() == right.year() && left.month() == right.day() && left.day() == right.month();
    if same.iter().filter(|s| **s).count() == 2 || swapped {
        return 2;
    }
    if left.year() == right.year() {
        return 3;
    }
    4
}

/// The SQL function over two DATE values.
pub fn udf() -> ScalarUDF {
    let udf = create_udf(
        NAME,
        vec![DataType::Date32, DataType::Date32],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = arrays(args)?;
            let l = a[0].as_primitive::<Date32Type>();
            let r = a[1].as_primitive::<Date32Type>();
            let out: Int32Array = l
                .iter()
                .zip(r.iter())
                .map(|(x, y)| {
                    let level = match (x.and_then(date_of), y.and_then(date_of)) {
                        (Some(x), Some(y)) => level(x, y),
                        _ => 0,
                    };
                    Some(i32::from(level))
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    documented(
        udf,
        "Date agreement: 1 exact, 2 one part differs or day and month swapped, 3 same year, 4 different; 0 missing.",
        "sn_level_date(l.birth_date, r.birth_date)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_levels() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(level(d(1980, 3, 15), d(1980, 3, 15)), 1);
        assert_eq!(level(d(1980, 3, 16), d(1980, 3, 15)), 2);
        assert_eq!(level(d(1980, 5, 3), d(1980, 3, 5)), 2);
        assert_eq!(level(d(1980, 7, 1), d(1980, 3, 15)), 3);
        assert_eq!(level(d(1981, 7, 1), d(1980, 3, 15)), 4);
    }
}
