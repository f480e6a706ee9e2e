//! Resident ID numbers (GB 11643-1999).
//!
//! 18 characters: a 6-digit region code, the birth date as YYYYMMDD, a 3-digit
//! sequence whose last digit is odd for men, and a check character. Legacy
//! 15-digit numbers lack the century and the check character.
//!
//! Normalisation repairs what clerks and exports do to the number (full-width
//! digits, lower-case x, spaces and hyphens, disability-certificate suffixes,
//! the 15-digit form, a dropped check character) but never rejects a number:
//! an invalid number is kept with `valid = false`, because the linker can
//! still use its region code, birth date and most of its digits.

use super::text::nfkc;
use chrono::NaiveDate;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// The normalised form of one ID number field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdNumber {
    /// Upper-case, separators removed, converted to 18 characters when the
    /// input allowed it.
    pub value: String,
    /// The check character matches and the birth date is a real date.
    pub valid: bool,
    /// What was repaired, for the record ("15→18", "check added", …).
    pub repairs: Vec<&'static str>,
}

/// Check character for the first 17 digits; `None` when they are not all digits.
pub fn check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (c, w) in first17.chars().zip(WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    Some(CHECK_CHARS[(sum % 11) as usize] as char)
}

/// Birth date encoded in an 18-character number.
pub fn birth_date(id18: &str) -> Option<NaiveDate> {
    let digits = id18.get(6..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = digits[0..4].parse().ok()?;
    let m: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
    if !(1880..=2100).contains(&y) {
        return None;
    }
    NaiveDate::from_ymd_opt(y, m, d)
}

/// 'M' or 'F' from the 17th character (odd = male).
pub fn gender(id18: &str) -> Option<char> {
    let d = id18.chars().nth(16)?.to_digit(10)?;
    Some(if d % 2 == 1 { 'M' } else { 'F' })
}

/// True when the number has 17 digits, the right check character and a real
/// birth date.
pub fn is_valid(id18: &str) -> bool {
    id18.len() == 18
        && id18.is_ascii()
        && check_char(&id18[..17]) == id18[17..].chars().next()
        && birth_date(id18).is_some()
}

/// Convert a legacy 15-digit number to 18 characters: "19" after the region
/// code and a computed check character.
pub fn upgrade_15(id15: &str) -> Option<String> {
    if id15.len() != 15 || !id15.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let first17 = format!("{}19{}", &id15[..6], &id15[6..]);
    let check = check_char(&first17)?;
    Some(format!("{first17}{check}"))
}

/// Normalise an ID number as written in an extract. Returns `None` for an
/// empty field.
pub fn normalise_id_number(raw: &str) -> Option<IdNumber> {
    let mut repairs = Vec::new();
    if raw.chars().any(|c| ('\u{FF10}'..='\u{FF5A}').contains(&c)) {
        repairs.push("full-width");
    }
    let folded = nfkc(raw);
    let trimmed = folded.trim();
    let mut value: String = trimmed
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_' | '—' | '–' | '.'))
        .collect();
    if value.is_empty() {
        return None;
    }
    if value.len() != trimmed.len() {
        repairs.push("separators removed");
    }
    if value.contains('x') {
        repairs.push("x→X");
    }
    value.make_ascii_uppercase();

    let leading18 = value.len() >= 18
        && value.as_bytes()[..17].iter().all(|b| b.is_ascii_digit())
        && matches!(value.as_bytes()[17], b'0'..=b'9' | b'X');
    if value.len() > 18 && leading18 {
        // A disability-certificate number: the 18-character ID plus a
        // 2–4 character suffix (grade and type).
        value.truncate(18);
        repairs.push("certificate suffix cut");
    } else if value.len() == 15 {
        if let Some(up) = upgrade_15(&value) {
            value = up;
            repairs.push("15→18");
        }
    } else if value.len() == 17 && value.bytes().all(|b| b.is_ascii_digit()) {
        // The check character was dropped: restore it. The number cannot be
        // verified, so it stays flagged invalid.
        let check = check_char(&value).expect("17 digits");
        value.push(check);
        repairs.push("check added");
        return Some(IdNumber {
            valid: false,
            value,
            repairs,
        });
    }
    let valid = is_valid(&value);
    Some(IdNumber {
        value,
        valid,
        repairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // A published example number with a correct check character.
    const GOOD: &str = "11010519491231002X";

    #[test]
    fn known_number_is_valid() {
        assert!(is_valid(GOOD));
        assert_eq!(birth_date(GOOD), NaiveDate::from_ymd_opt(1949, 12, 31));
        assert_eq!(gender(GOOD), Some('F'));
    }

    #[test]
    fn repairs_common_damage() {
        for dirty in [
            "11010519491231002x",
            " 110105 19491231 002X ",
            "110105-19491231-002X",
            "１１０１０５１９４９１２３１００２Ｘ",
            "11010519491231002X12",
            "11010519491231002X 4 2",
        ] {
            let id = normalise_id_number(dirty).unwrap();
            assert_eq!(id.value, GOOD, "{dirty}");
            assert!(id.valid, "{dirty}");
        }
    }

    #[test]
    fn dropped_check_character_is_restored_but_flagged() {
        let id = normalise_id_number("11010519491231002").unwrap();
        assert_eq!(id.value, GOOD);
        assert!(!id.valid);
    }

    #[test]
    fn legacy_15_digit_is_upgraded() {
        let id = normalise_id_number("110105491231002").unwrap();
        assert_eq!(id.value, GOOD);
        assert!(id.valid);
    }

    #[test]
    fn invalid_numbers_are_kept() {
        let id = normalise_id_number("110105194912310021").unwrap();
        assert_eq!(id.value, "110105194912310021");
        assert!(!id.valid);
        let id = normalise_id_number("11010519491331002X").unwrap(); // month 13
        assert!(!id.valid);
        let id = normalise_id_number("abc").unwrap();
        assert_eq!(id.value, "ABC");
        assert!(!id.valid);
        assert!(normalise_id_number("   ").is_none());
    }

    fn valid_id() -> impl Strategy<Value = String> {
        (
            110000u32..660000,
            1930i32..2020,
            1u32..=12,
            1u32..=28,
            0u32..1000,
        )
            .prop_map(|(region, y, m, d, seq)| {
                let first17 = format!("{region:06}{y:04}{m:02}{d:02}{seq:03}");
                let check = check_char(&first17).unwrap();
                format!("{first17}{check}")
            })
    }

    proptest! {
        // The domain guarantees: one mistyped digit always breaks the check.
        #[test]
        fn one_substitution_breaks_the_check(id in valid_id(), pos in 0usize..17, delta in 1u32..10) {
            let mut chars: Vec<char> = id.chars().collect();
            let d = chars[pos].to_digit(10).unwrap();
            chars[pos] = char::from_digit((d + delta) % 10, 10).unwrap();
            let typo: String = chars.into_iter().collect();
            prop_assert!(!is_valid(&typo) || birth_date(&typo).is_none() || check_char(&typo[..17]) != typo.chars().nth(17));
            prop_assert!(check_char(&typo[..17]) != typo.chars().nth(17));
        }

        // …and so does swapping two different adjacent digits.
        #[test]
        fn adjacent_swap_breaks_the_check(id in valid_id(), pos in 0usize..16) {
            let mut chars: Vec<char> = id.chars().collect();
            prop_assume!(chars[pos] != chars[pos + 1]);
            chars.swap(pos, pos + 1);
            let swapped: String = chars.into_iter().collect();
            prop_assert!(!is_valid(&swapped));
        }

        // Normalisation is idempotent and keeps valid numbers as they are.
        #[test]
        fn normalising_twice_changes_nothing(id in valid_id(), lower in any::<bool>(), spaced in any::<bool>()) {
            let mut dirty = if lower { id.to_lowercase() } else { id.clone() };
            if spaced { dirty.insert(6, ' '); dirty.insert(15, '-'); }
            let once = normalise_id_number(&dirty).unwrap();
            prop_assert_eq!(&once.value, &id);
            prop_assert!(once.valid);
            let twice = normalise_id_number(&once.value).unwrap();
            prop_assert_eq!(twice.value, once.value);
        }

        // A 15-digit number upgrades to a valid 18-digit number whose birth
        // date is in the 1900s and whose digits are the old ones.
        #[test]
        fn fifteen_digit_upgrade(id in valid_id().prop_filter("1900s", |s| s[6..8] == *"19")) {
            let old = format!("{}{}", &id[..6], &id[8..17]);
            let up = upgrade_15(&old).unwrap();
            prop_assert_eq!(&up, &id);
            prop_assert!(is_valid(&up));
        }
    }
}
