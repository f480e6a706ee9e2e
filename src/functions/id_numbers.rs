//! `sn_id_birth(id)` and `sn_id_gender(id)`: what a resident ID number
//! (GB 11643) says about its holder.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Date32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};

use super::{arrays, documented, text_udf, utf8};
use crate::identity::id_number;

const EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A date as Arrow's Date32 (days since 1970-01-01).
pub(crate) fn days_of(date: chrono::NaiveDate) -> i32 {
    chrono::Datelike::num_days_from_ce(&date) - EPOCH_DAYS_FROM_CE
}

/// Arrow's Date32 as a date.
pub(crate) fn date_of(days: i32) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_num_days_from_ce_opt(days + EPOCH_DAYS_FROM_CE)
}

/// `sn_id_birth(id)`.
pub fn birth() -> ScalarUDF {
    let udf = create_udf(
        "sn_id_birth",
        vec![DataType::Utf8],
        DataType::Date32,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let a = utf8(&arrays(args)?[0])?;
            let out: Date32Array = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(id_number::birth_date).map(days_of))
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out)))
        }),
    );
    documented(
        udf,
        "The birth date written in an ID number (digits 7-14, or 7-12 of a 15-digit one); NULL when they are not a date.",
        "sn_id_birth(id_number)",
    )
}

/// `sn_id_gender(id)`.
pub fn gender() -> ScalarUDF {
    text_udf(
        "sn_id_gender",
        |s| id_number::gender(s).map(|g| if g == 'M' { "男" } else { "女" }.to_string()),
        "男 or 女 from an ID number's sequence digit (odd is male).",
        "sn_id_gender(id_number)",
    )
}
