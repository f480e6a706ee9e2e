//! Comparison functions: given a record's value and a candidate's, the
//! level of agreement, 1 = best. Level 0 means "no information" (a value is
//! missing) and carries no weight. Each kind lists its level labels.

use chrono::{Datelike, NaiveDate};

use super::chinese::{look_alike_key, name_key, pinyin_key};

/// The comparison kinds a settings file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    IdNumber,
    ChineseName,
    Date,
    Gender,
    Region,
    Exact,
    JaroWinkler,
    Levenshtein,
    DamerauLevenshtein,
    DateDistance,
    NumericDifference,
}

impl Kind {
    /// Level labels, best first (index 0 is level 1). `thresholds` shape the
    /// generic kinds' levels.
    pub fn labels(self, thresholds: &[f64]) -> Vec<String> {
        let fixed: &[&str] = match self {
            Kind::IdNumber => &[
                "exact",
                "legacy_15",
                "normalised",
                "one_typo_or_swap",
                "region_and_birth",
                "different",
            ],
            Kind::ChineseName => &[
                "exact",
                "simplified_or_separator",
                "same_pinyin",
                "look_alike",
                "one_char_dropped",
                "jaro_winkler_0.88",
                "different",
            ],
            Kind::Date => &["exact", "one_part_differs", "same_year", "different"],
            Kind::Gender => &["same", "different"],
            Kind::Region => &[
                "same_village",
                "same_township",
                "same_county",
                "same_county_other_township",
                "same_prefecture",
                "same_province",
                "different",
            ],
            Kind::Exact => &["exact", "different"],
            _ => &[],
        };
        if !fixed.is_empty() {
            return fixed.iter().map(|s| s.to_string()).collect();
        }
        let mut labels = vec!["exact".to_string()];
        for t in thresholds {
            labels.push(match self {
                Kind::JaroWinkler => format!("jaro_winkler_{t}"),
                Kind::Levenshtein => format!("levenshtein_{t}"),
                Kind::DamerauLevenshtein => format!("damerau_levenshtein_{t}"),
                Kind::DateDistance => format!("within_{t}_days"),
                _ => format!("within_{t}"),
            });
        }
        labels.push("different".into());
        labels
    }
}

/// ID numbers. `left_raw` is the record's original text (to tell exact from
/// repaired agreement); `left` and `right` are normalised.
pub fn id_number(left: &str, left_raw: Option<&str>, right: &str) -> u8 {
    if left == right {
        let raw: String = left_raw.unwrap_or(left).trim().to_string();
        if raw == right {
            return 1;
        }
        let digits = raw.chars().filter(|c| c.is_ascii_digit()).count();
        if raw.len() == 15 && digits == 15 {
            return 2;
        }
        return 3;
    }
    // A mistyped digit or a swap of neighbours always breaks the check
    // character, so a record whose number is valid and yet not the
    // candidate's is about someone else: at province scale, a namesake
    // born the same day in the same county (same first 14 characters).
    if crate::identity::id_number::is_valid(left) {
        return 6;
    }
    if left.len() == 18 && right.len() == 18 && left.is_ascii() && right.is_ascii() {
        let l = left.as_bytes();
        let r = right.as_bytes();
        let diffs: Vec<usize> = (0..18).filter(|&i| l[i] != r[i]).collect();
        let one_typo = diffs.len() == 1;
        let swap = diffs.len() == 2
            && diffs[1] == diffs[0] + 1
            && l[diffs[0]] == r[diffs[1]]
            && l[diffs[1]] == r[diffs[0]];
        // A typo in the first 17 digits also changes the check character.
        let typo_and_check = diffs.len() == 2 && diffs[1] == 17;
        if one_typo || swap || typo_and_check {
            return 4;
        }
        if l[..14] == r[..14] {
            return 5;
        }
    }
    6
}

/// Chinese names (works for any script: non-Chinese names fall through to
/// Jaro–Winkler).
pub fn chinese_name(left: &str, right: &str) -> u8 {
    chinese_name_with_keys(
        [left, &name_key(left), &pinyin_key(left)],
        [right, &name_key(right), &pinyin_key(right)],
    )
}

/// As [`chinese_name`], with each side's (name, name key, pinyin key)
/// computed once per record rather than once per pair.
pub fn chinese_name_with_keys(left: [&str; 3], right: [&str; 3]) -> u8 {
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

/// Dates: exact; one of year, month or day differs (or month and day are
/// swapped), as a slip of the pen does; same year; different.
pub fn date(left: NaiveDate, right: NaiveDate) -> u8 {
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

pub fn gender(left: &str, right: &str) -> u8 {
    if left == right { 1 } else { 2 }
}

/// Administrative codes (统计用区划代码): province (2 digits), prefecture
/// (4), county (6), township (9), village (12). A township is written as
/// its 9 digits or as 12 ending in `000`; a county as 6, or 9 ending in
/// `000`. Levels: same village; same township; same county where one side
/// does not say the township; same county, other township; same
/// prefecture; same province; different.
pub fn region(left: &str, right: &str) -> u8 {
    let (l, r) = (region_precision(left), region_precision(right));
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
fn region_precision(code: &str) -> &str {
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

/// Generic string comparison with thresholds: level 1 exact, then one level
/// per threshold (similarity ≥ t for Jaro–Winkler, distance ≤ t for edit
/// distances), then different.
pub fn generic_string(kind: Kind, left: &str, right: &str, thresholds: &[f64]) -> u8 {
    if left == right {
        return 1;
    }
    for (i, t) in thresholds.iter().enumerate() {
        let hit = match kind {
            Kind::JaroWinkler => strsim::jaro_winkler(left, right) >= *t,
            Kind::Levenshtein => strsim::levenshtein(left, right) as f64 <= *t,
            Kind::DamerauLevenshtein => strsim::damerau_levenshtein(left, right) as f64 <= *t,
            _ => false,
        };
        if hit {
            return i as u8 + 2;
        }
    }
    thresholds.len() as u8 + 2
}

/// Numeric comparison (also dates as day numbers): exact, then |difference| ≤ t.
pub fn generic_number(left: f64, right: f64, thresholds: &[f64]) -> u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";

    #[test]
    fn id_levels() {
        assert_eq!(id_number(ID, Some(ID), ID), 1);
        assert_eq!(id_number(ID, Some("110105491231002"), ID), 2);
        assert_eq!(id_number(ID, Some("11010519491231002x"), ID), 3);
        assert_eq!(id_number("11010519491231003X", None, ID), 4); // one typo
        assert_eq!(id_number("11010519491231003Y", None, ID), 4); // typo, check differs too
        assert_eq!(id_number("11010519492131002X", None, ID), 4); // adjacent swap
        assert_eq!(id_number("110105194912319998", None, ID), 5); // not a valid number
        assert_eq!(id_number("522322198001010011", None, ID), 6);
        // Valid numbers that are not the candidate's: other people, however
        // close (same place and birth date; one digit and the check).
        let other = |first17: &str| {
            format!(
                "{first17}{}",
                crate::identity::id_number::check_char(first17).unwrap()
            )
        };
        assert_eq!(id_number(&other("11010519491231005"), None, ID), 6);
        assert_eq!(id_number(&other("11010519491231003"), None, ID), 6);
    }

    #[test]
    fn name_levels() {
        assert_eq!(chinese_name("王丽", "王丽"), 1);
        assert_eq!(chinese_name("王麗", "王丽"), 2);
        assert_eq!(chinese_name("买买提•艾力", "买买提·艾力"), 2);
        assert_eq!(chinese_name("王莉", "王丽"), 3);
        assert_eq!(chinese_name("玉伟", "王伟"), 4);
        assert_eq!(chinese_name("刘英", "刘秀英"), 5);
        assert_eq!(chinese_name("王伟", "李娜"), 7);
        assert_eq!(chinese_name("Jon Smith", "John Smith"), 5);
        assert_eq!(chinese_name("Jon Smith", "Jan Smith"), 6);
    }

    #[test]
    fn date_levels() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(date(d(1980, 3, 15), d(1980, 3, 15)), 1);
        assert_eq!(date(d(1980, 3, 16), d(1980, 3, 15)), 2);
        assert_eq!(date(d(1980, 5, 3), d(1980, 3, 5)), 2);
        assert_eq!(date(d(1980, 7, 1), d(1980, 3, 15)), 3);
        assert_eq!(date(d(1981, 7, 1), d(1980, 3, 15)), 4);
    }

    #[test]
    fn region_levels() {
        let village = "522322101203";
        assert_eq!(region(village, "522322101203"), 1);
        assert_eq!(region(village, "522322101205"), 2);
        // A school's township, written both ways.
        assert_eq!(region(village, "522322101000"), 2);
        assert_eq!(region(village, "522322101"), 2);
        // Only the county is known on one side: no evidence either way below it.
        assert_eq!(region(village, "522322"), 3);
        assert_eq!(region(village, "522322000000"), 3);
        assert_eq!(region(village, "522322102203"), 4);
        assert_eq!(region(village, "522301"), 5);
        assert_eq!(region(village, "520101"), 6);
        assert_eq!(region(village, "450101"), 7);
        assert_eq!(region("5223２2", "522322"), 5);
        assert_eq!(region("", "522322"), 7);
    }

    #[test]
    fn generic_levels() {
        assert_eq!(
            generic_string(Kind::JaroWinkler, "martha", "marhta", &[0.95, 0.9]),
            2
        );
        assert_eq!(
            generic_string(Kind::Levenshtein, "kitten", "sitting", &[1.0, 3.0]),
            3
        );
        assert_eq!(
            generic_string(Kind::DamerauLevenshtein, "ab", "ba", &[1.0]),
            2
        );
        assert_eq!(generic_number(100.0, 103.0, &[1.0, 5.0]), 3);
        assert_eq!(region("522322", "522301"), 5);
        assert_eq!(
            Kind::JaroWinkler.labels(&[0.9]),
            vec!["exact", "jaro_winkler_0.9", "different"]
        );
    }
}
