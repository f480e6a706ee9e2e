//! `sn_json(text)`: a value as a JSON string literal (`"…"`, escaped), or
//! `null` for NULL, so the warning stage can build its evidence and
//! delivery payloads as SQL plans.

use datafusion::logical_expr::ScalarUDF;

use super::text_udf;

/// `text` as a JSON string literal.
pub fn quote(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// `sn_json(text)`.
pub fn udf() -> ScalarUDF {
    // NULL in gives NULL out; callers write coalesce(sn_json(x), 'null').
    text_udf(
        "sn_json",
        |v| Some(quote(v)),
        "The text as a JSON string literal, quoted and escaped; NULL for NULL.",
        "coalesce(sn_json(detail), 'null')",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            quote("年度自付 \"6000\" 元\n"),
            "\"年度自付 \\\"6000\\\" 元\\n\""
        );
        let back: String = serde_json::from_str(&quote("a\\b\u{1}")).unwrap();
        assert_eq!(back, "a\\b\u{1}");
    }
}
