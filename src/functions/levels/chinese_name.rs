//! `sn_level_chinese_name(name, candidate)` and
//! `sn_level_chinese_name_keys(…)`: Chinese names (any script works:
//! non-Chinese names fall through to Jaro–Winkler).

use datafusion::logical_expr::ScalarUDF;

use crate::functions::level_udf;
use crate::identity::chinese_name::{look_alike_key, name_key, pinyin_key};

/// The function's name in SQL.
pub const NAME: &str = "sn_level_chinese_name";
/// The same comparison over names whose keys are already computed.
pub const KEYS_NAME: &str = "sn_level_chinese_name_keys";

/// Levels: 1 exact; 2 the same once simplified and without separators;
/// 3 the same pinyin; 4 look-alike characters; 5 one character dropped;
/// 6 Jaro–Winkler ≥ 0.88; 7 different.
pub fn level(left: &str, right: &str) -> u8 {
    level_with_keys(
        [left, &name_key(left), &pinyin_key(left)],
        [right, &name_key(right), &pinyin_key(right)],
    )
}

/// As [`level`], with each side's (name, name key, pinyin key) computed
/// once per record rather than once per pair.
pub fn level_with_keys(left: [&str; 3], right: [&str; 3]) -> u8 {
    let [left, lk, lp] = left;
    let [right, rk, rp] = right;
    if left == right {
        return 1;
    }
    if lk == rk {
        return 2;
    }
    if lp == rp {
        return 3;
    }
    if look_alike_key(lk) == look_alike_key(rk) {
        return 4;
    }
    if one_char_dropped(lk, rk) {
        return 5;
    }
    if strsim::jaro_winkler(lk, rk) >= 0.88 {
        return 6;
    }
    7
}

fn one_char_dropped(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (short, long) = if a.len() < b.len() { (a, b) } else { (b, a) };
    if long.len() != short.len() + 1 || short.len() < 2 {
        return false;
    }
    (0..long.len()).any(|skip| {
        long.iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, c)| c)
            .eq(short.iter())
    })
}

/// `sn_level_chinese_name(name, candidate)`.
pub fn udf() -> ScalarUDF {
    level_udf(
        NAME,
        2,
        &[],
        |v| level(v[0].unwrap_or_default(), v[1].unwrap_or_default()),
        "Chinese name agreement: 1 exact, 2 simplified or separator, 3 same pinyin, 4 look-alike, 5 one character dropped, 6 Jaro-Winkler >= 0.88, 7 different; 0 missing.",
        "sn_level_chinese_name(l.name, r.name)",
    )
}

/// `sn_level_chinese_name_keys(left name, right name, left key, right key,
/// left pinyin, right pinyin)`.
pub fn keys_udf() -> ScalarUDF {
    level_udf(
        KEYS_NAME,
        6,
        &[],
        |v| {
            let s = |i: usize| v[i].unwrap_or_default();
            level_with_keys([s(0), s(2), s(4)], [s(1), s(3), s(5)])
        },
        "As sn_level_chinese_name, over names whose keys (sn_name_key, sn_pinyin) are already computed.",
        "sn_level_chinese_name_keys(l.name, r.name, l.name_key, r.name_key, l.name_pinyin, r.name_pinyin)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_levels() {
        assert_eq!(level("王丽", "王丽"), 1);
        assert_eq!(level("王麗", "王丽"), 2);
        assert_eq!(level("买买提•艾力", "买买提·艾力"), 2);
        assert_eq!(level("王莉", "王丽"), 3);
        assert_eq!(level("玉伟", "王伟"), 4);
        assert_eq!(level("刘英", "刘秀英"), 5);
        assert_eq!(level("王伟", "李娜"), 7);
        assert_eq!(level("Jon Smith", "John Smith"), 5);
        assert_eq!(level("Jon Smith", "Jan Smith"), 6);
    }
}
