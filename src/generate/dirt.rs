//! The clerical errors found in departmental extracts, applied to a true
//! name and ID number. Each function returns the dirty text and the kind of
//! dirt applied, which the truth files record.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::names::{HOMOPHONES, LOOK_ALIKES, MINORITY_SEPARATORS, TRADITIONAL};
use crate::identity::id_number::check_char;

/// The kinds of damage the generator does to ID numbers, as the truth file's `dirt` column names them.
pub const ID_KINDS: &[&str] = &[
    "id_missing",
    "id_typo",
    "id_swap",
    "id_15",
    "id_fullwidth",
    "id_lower_x",
    "id_spaces",
    "id_check_dropped",
    "id_cert_suffix",
];

/// The kinds of damage the generator does to names.
pub const NAME_KINDS: &[&str] = &[
    "name_homophone",
    "name_lookalike",
    "name_traditional",
    "name_dropped",
    "name_spaces",
    "name_separator",
];

fn full_width(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '0'..='9' | 'A'..='Z' => char::from_u32(c as u32 - 0x20 + 0xFF00).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Damage an 18-character ID number in the way named by `kind`. Kinds that
/// do not apply to this number fall back to inner spaces.
pub fn dirty_id(rng: &mut impl Rng, id: &str, kind: &'static str) -> (String, &'static str) {
    let mut chars: Vec<char> = id.chars().collect();
    match kind {
        "id_missing" => (String::new(), kind),
        "id_typo" => {
            let pos = rng.random_range(0..17);
            let d = chars[pos].to_digit(10).unwrap_or(0);
            chars[pos] = char::from_digit((d + rng.random_range(1..10)) % 10, 10).unwrap_or('0');
            (chars.into_iter().collect(), kind)
        }
        "id_swap" => {
            let candidates: Vec<usize> = (0..16).filter(|&i| chars[i] != chars[i + 1]).collect();
            match candidates.choose(rng) {
                Some(&pos) => {
                    chars.swap(pos, pos + 1);
                    (chars.into_iter().collect(), kind)
                }
                None => dirty_id(rng, id, "id_spaces"),
            }
        }
        "id_15" if &id[6..8] == "19" => (format!("{}{}", &id[..6], &id[8..17]), kind),
        "id_fullwidth" => (full_width(id), kind),
        "id_lower_x" if id.ends_with('X') => (id.to_lowercase(), kind),
        "id_check_dropped" => (id[..17].to_string(), kind),
        "id_cert_suffix" => {
            let suffix = ["11", "12", "21", "42", "44"]
                .choose(rng)
                .copied()
                .unwrap_or("11");
            (format!("{id}{suffix}"), kind)
        }
        _ => {
            let sep = if rng.random_bool(0.5) { " " } else { "-" };
            (
                format!("{}{sep}{}{sep}{}", &id[..6], &id[6..14], &id[14..]),
                "id_spaces",
            )
        }
    }
}

fn homophone(rng: &mut impl Rng, c: &str) -> Option<&'static str> {
    let group = HOMOPHONES.iter().find(|g| g.contains(&c))?;
    let others: Vec<&&str> = group.iter().filter(|o| **o != c).collect();
    others.choose(rng).map(|s| **s)
}

/// Damage a name in the way named by `kind`; kinds that do not apply fall
/// back to a stray space.
pub fn dirty_name(rng: &mut impl Rng, name: &str, kind: &'static str) -> (String, &'static str) {
    let chars: Vec<String> = name.chars().map(String::from).collect();
    let minority = name.contains('·');
    match kind {
        "name_homophone" if !minority => {
            // Prefer the given name; surnames are copied more carefully.
            let positions: Vec<usize> = (1..chars.len()).rev().chain(0..1).collect();
            for pos in positions {
                if let Some(h) = homophone(rng, &chars[pos]) {
                    let mut out = chars.clone();
                    out[pos] = h.to_string();
                    return (out.concat(), kind);
                }
            }
            dirty_name(rng, name, "name_spaces")
        }
        "name_lookalike" if !minority => {
            for (pos, c) in chars.iter().enumerate() {
                if let Some((a, b)) = LOOK_ALIKES.iter().find(|(a, b)| a == c || b == c) {
                    let mut out = chars.clone();
                    out[pos] = if a == c { b.to_string() } else { a.to_string() };
                    return (out.concat(), kind);
                }
            }
            dirty_name(rng, name, "name_homophone")
        }
        "name_traditional" if !minority => {
            let mut changed = false;
            let out: String = chars
                .iter()
                .map(|c| match TRADITIONAL.iter().find(|(s, _)| s == c) {
                    Some((_, t)) => {
                        changed = true;
                        t.to_string()
                    }
                    None => c.clone(),
                })
                .collect();
            if changed {
                (out, kind)
            } else {
                dirty_name(rng, name, "name_homophone")
            }
        }
        "name_dropped" if !minority && chars.len() >= 3 => {
            let pos = rng.random_range(1..chars.len());
            let out: String = chars
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pos)
                .map(|(_, c)| c.as_str())
                .collect();
            (out, kind)
        }
        "name_separator" if minority => {
            let sep = MINORITY_SEPARATORS[1..].choose(rng).copied().unwrap_or("");
            (name.replace('·', sep), kind)
        }
        _ => {
            if chars.len() < 2 {
                return (format!(" {name} "), "name_spaces");
            }
            let pos = rng.random_range(1..chars.len());
            let mut out = chars[..pos].concat();
            out.push(if rng.random_bool(0.5) {
                ' '
            } else {
                '\u{3000}'
            });
            out.push_str(&chars[pos..].concat());
            (out, "name_spaces")
        }
    }
}

/// A valid ID number for a region, birth date and sex.
pub fn make_id(region: &str, birth: chrono::NaiveDate, male: bool, sequence: u32) -> String {
    let seq = (sequence % 500) * 2 + u32::from(male);
    let first17 = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
    let check = check_char(&first17).unwrap_or('0');
    format!("{first17}{check}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{id_number::is_valid, normalise_id_number};
    use rand::SeedableRng;

    #[test]
    fn made_ids_are_valid_and_dirt_is_recoverable_or_detectable() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let birth = chrono::NaiveDate::from_ymd_opt(1975, 3, 9).unwrap();
        for seq in 0..200 {
            let id = make_id("522322", birth, seq % 2 == 0, seq);
            assert!(is_valid(&id), "{id}");
            for kind in ID_KINDS {
                let (dirty, applied) = dirty_id(&mut rng, &id, kind);
                let normalised = normalise_id_number(&dirty);
                match applied {
                    "id_missing" => assert!(normalised.is_none()),
                    "id_typo" | "id_swap" => assert!(!normalised.unwrap().valid, "{dirty}"),
                    _ => assert_eq!(normalised.unwrap().value, id, "{applied}: {dirty}"),
                }
            }
        }
    }

    #[test]
    fn name_dirt_changes_the_name() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for name in ["王丽", "张伟", "刘秀英", "买买提·艾力"] {
            for kind in NAME_KINDS {
                let (dirty, _) = dirty_name(&mut rng, name, kind);
                assert_ne!(dirty, name, "{kind}");
            }
        }
    }
}
