//! `sn_level_id_number(id, id_raw, candidate_id)`: resident ID numbers.

use datafusion::logical_expr::ScalarUDF;

use crate::functions::level_udf;

/// The function's name in SQL.
pub const NAME: &str = "sn_level_id_number";

/// Levels: 1 the same as written; 2 the same once a legacy 15-digit number
/// is converted; 3 the same after other repair (case, full-width digits,
/// separators); 4 one typo or a swap of neighbours; 5 the same first 14
/// characters (place and birth date); 6 different. `left_raw` is the
/// record's original text; `left` and `right` are normalised.
pub fn level(left: &str, left_raw: Option<&str>, right: &str) -> u8 {
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

/// The SQL function; the raw text is optional.
pub fn udf() -> ScalarUDF {
    level_udf(
        NAME,
        3,
        &[1],
        |v| level(v[0].unwrap_or_default(), v[1], v[2].unwrap_or_default()),
        "ID number agreement: 1 exact, 2 legacy 15-digit, 3 repaired, 4 one typo or swap, 5 same first 14, 6 different; 0 missing.",
        "sn_level_id_number(l.id_number, l.id_number_raw, r.id_number)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "11010519491231002X";

    #[test]
    fn id_levels() {
        assert_eq!(level(ID, Some(ID), ID), 1);
        assert_eq!(level(ID, Some("110105491231002"), ID), 2);
        assert_eq!(level(ID, Some("11010519491231002x"), ID), 3);
        assert_eq!(level("11010519491231003X", None, ID), 4); // one typo
        assert_eq!(level("11010519491231003Y", None, ID), 4); // typo, check differs too
        assert_eq!(level("11010519492131002X", None, ID), 4); // adjacent swap
        assert_eq!(level("110105194912319998", None, ID), 5); // not a valid number
        assert_eq!(level("522322198001010011", None, ID), 6);
        // Valid numbers that are not the candidate's: other people, however
        // close (same place and birth date; one digit and the check).
        let other = |first17: &str| {
            format!(
                "{first17}{}",
                crate::identity::id_number::check_char(first17).unwrap()
            )
        };
        assert_eq!(level(&other("11010519491231005"), None, ID), 6);
        assert_eq!(level(&other("11010519491231003"), None, ID), 6);
    }
}
