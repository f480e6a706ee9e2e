//! `sn_level_region(code, candidate)`: administrative codes
//! (统计用区划代码).

use datafusion::logical_expr::ScalarUDF;

use crate::functions::level_udf;

/// The function's name in SQL.
pub const NAME: &str = "sn_level_region";

/// Codes are province (2 digits), prefecture (4), county (6), township
/// (9), village (12). A township is written as its 9 digits or as 12
/// ending in `000`; a county as 6, or 9 ending in `000`. Levels: 1 same
/// village; 2 same township; 3 same county where one side does not say the
/// township; 4 same county, other township; 5 same prefecture; 6 same
/// province; 7 different.
pub fn level(left: &str, right: &str) -> u8 {
    let (l, r) = (precision(left), precision(right));
    let prefix = |n: usize| l.len() >= n && r.len() >= n && l[..n] == r[..n];
    if l.len() == 12 && prefix(12) {
        1
    } else if prefix(9) {
        2
    } else if prefix(6) {
        if l.len() >= 9 && r.len() >= 9 { 4 } else { 3 }
    } else if prefix(4) {
        5
    } else if prefix(2) {
        6
    } else {
        7
    }
}

/// The meaningful part of a region code: trailing `000` groups below the
/// county say "not given", and anything that is not ASCII digits counts
/// only as far as it is digits.
fn precision(code: &str) -> &str {
    let digits = code.bytes().take_while(u8::is_ascii_digit).count();
    let mut code = &code[..digits];
    if code.len() > 12 {
        code = &code[..12];
    }
    if code.len() != 12 && code.len() != 9 {
        return code.get(..6).unwrap_or(code);
    }
    while code.len() > 6 && code.ends_with("000") {
        code = &code[..code.len() - 3];
    }
    code
}

/// The SQL function.
pub fn udf() -> ScalarUDF {
    level_udf(
        NAME,
        2,
        &[],
        |v| level(v[0].unwrap_or_default(), v[1].unwrap_or_default()),
        "Region code agreement: 1 same village, 2 same township, 3 same county (township unknown), 4 same county other township, 5 same prefecture, 6 same province, 7 different; 0 missing.",
        "sn_level_region(l.region_code, r.region_code)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_levels() {
        let village = "522322101203";
        assert_eq!(level(village, "522322101203"), 1);
        assert_eq!(level(village, "522322101205"), 2);
        // A school's township, written both ways.
        assert_eq!(level(village, "522322101000"), 2);
        assert_eq!(level(village, "522322101"), 2);
        // Only the county is known on one side: no evidence either way below it.
        assert_eq!(level(village, "522322"), 3);
        assert_eq!(level(village, "522322000000"), 3);
        assert_eq!(level(village, "522322102203"), 4);
        assert_eq!(level(village, "522301"), 5);
        assert_eq!(level(village, "520101"), 6);
        assert_eq!(level(village, "450101"), 7);
        assert_eq!(level("5223２2", "522322"), 5);
        assert_eq!(level("", "522322"), 7);
        assert_eq!(level("522322", "522301"), 5);
    }
}
