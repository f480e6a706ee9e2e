//! Text clean-up shared by every field: NFKC folds full-width letters and
//! digits to their ASCII forms; surrounding whitespace is dropped.

use std::borrow::Cow;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// NFKC fold, skipped for text that is already in NFKC (all ASCII text and
/// most Chinese text), which is nearly every value.
pub fn nfkc(raw: &str) -> Cow<'_, str> {
    if raw.is_ascii()
        || raw.chars().all(nfkc_stable)
        || is_nfkc_quick(raw.chars()) == IsNormalized::Yes
    {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(raw.nfkc().collect())
    }
}

/// Characters NFKC never changes, checked by range before the full
/// quick-check: ASCII, the CJK unified ideographs and the ideographic comma
/// and full stop. Full-width forms, compatibility ideographs and the
/// ideographic space are not in these ranges.
fn nfkc_stable(c: char) -> bool {
    matches!(c as u32, 0..=0x7F | 0x3001 | 0x3002 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF)
}

/// NFKC-normalise and trim. Inner whitespace runs collapse to one space.
pub fn normalise_text(raw: &str) -> String {
    normalise_text_cow(raw).into_owned()
}

/// As [`normalise_text`], borrowing when nothing changes (nearly always).
pub fn normalise_text_cow(raw: &str) -> Cow<'_, str> {
    match nfkc(raw) {
        Cow::Borrowed(folded) => {
            let trimmed = folded.trim();
            if !has_whitespace_run(trimmed) {
                return Cow::Borrowed(trimmed);
            }
            Cow::Owned(collapse_whitespace(trimmed))
        }
        Cow::Owned(folded) => Cow::Owned(collapse_whitespace(folded.trim())),
    }
}

/// True when the text holds whitespace other than single ASCII spaces.
fn has_whitespace_run(text: &str) -> bool {
    let mut previous_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if previous_space || c != ' ' {
                return true;
            }
            previous_space = true;
        } else {
            previous_space = false;
        }
    }
    false
}

fn collapse_whitespace(trimmed: &str) -> String {
    let mut out = String::with_capacity(trimmed.len());
    for word in trimmed.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A person's name: as [`normalise_text`], and for names written in Chinese
/// characters the stray spaces clerks type between characters are removed
/// ("王 伟" → "王伟"). Latin-script names keep single spaces between words.
pub fn normalise_name(raw: &str) -> String {
    normalise_name_cow(raw).into_owned()
}

/// As [`normalise_name`], borrowing when nothing changes.
pub fn normalise_name_cow(raw: &str) -> Cow<'_, str> {
    let text = normalise_text_cow(raw);
    if text.contains(' ') && text.chars().any(is_cjk) {
        Cow::Owned(text.chars().filter(|c| !c.is_whitespace()).collect())
    } else {
        text
    }
}

/// True for characters of the CJK Unified Ideographs blocks used in names.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// True when the text is empty after normalisation, or one of the
/// placeholders exports use for "no value".
pub fn is_blank(text: &str) -> bool {
    // Every placeholder is at most four bytes long.
    text.len() <= 4
        && matches!(
            text,
            "" | "-" | "--" | "/" | "无" | "空" | "NULL" | "null" | "NaN" | "N/A" | "n/a"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_full_width_and_trims() {
        assert_eq!(normalise_text("  ５２２３ＡＢ　 "), "5223AB");
        assert_eq!(normalise_text("a \t b"), "a b");
    }

    #[test]
    fn names_lose_inner_spaces_only_in_chinese() {
        assert_eq!(normalise_name(" 王 伟 "), "王伟");
        assert_eq!(normalise_name("John   Smith"), "John Smith");
        assert_eq!(normalise_name("买买提·艾力"), "买买提·艾力");
    }

    #[test]
    fn placeholders_are_blank() {
        assert!(is_blank(""));
        assert!(is_blank("无"));
        assert!(!is_blank("0"));
    }
}
