//! `sn_name_key(name)` and `sn_pinyin(name)`: the keys Chinese names are
//! blocked and compared on (see `identity::chinese_name`).

use datafusion::logical_expr::ScalarUDF;

use super::text_udf;
use crate::identity::chinese_name::{name_key as key_of, pinyin_key};

/// `sn_name_key(name)`.
pub fn name_key() -> ScalarUDF {
    text_udf(
        "sn_name_key",
        |s| Some(key_of(s)),
        "The name with separators removed and traditional characters simplified.",
        "sn_name_key('陳 麗')",
    )
}

/// `sn_pinyin(name)`.
pub fn pinyin() -> ScalarUDF {
    text_udf(
        "sn_pinyin",
        |s| Some(pinyin_key(s)),
        "Tone-less pinyin of the name key; the surname uses its surname reading (单 is shan).",
        "sn_pinyin('单丽')",
    )
}
