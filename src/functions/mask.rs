//! `sn_mask_id(id)` and `sn_mask_name(name)`: the masking the access layer
//! applies for roles without raw values, also callable by analysts (see
//! `identity::mask`).

use datafusion::logical_expr::ScalarUDF;

use super::text_udf;
use crate::identity::mask;

/// `sn_mask_id(id)`.
pub fn id_number() -> ScalarUDF {
    text_udf(
        "sn_mask_id",
        |v| Some(mask::id_number(v)),
        "An ID number with its first 6 and last 4 characters kept and the rest starred.",
        "sn_mask_id('430102199001011234')",
    )
}

/// `sn_mask_name(name)`.
pub fn name() -> ScalarUDF {
    text_udf(
        "sn_mask_name",
        |v| Some(mask::name(v)),
        "A name reduced to its surname and a star.",
        "sn_mask_name('张三丰')",
    )
}
