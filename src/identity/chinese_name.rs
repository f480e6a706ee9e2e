//! Chinese-name keys for comparison: simplified characters without
//! transliteration separators, tone-less pinyin with surname readings, and
//! look-alike characters folded together.

use pinyin::ToPinyin;

use super::text::normalise_name;

/// Separators used between parts of transliterated minority names.
const SEPARATORS: &[char] = &['·', '•', '・', '.', '．', '‧', '∙', ' ', '\u{3000}', '-'];

/// Surnames whose reading as a surname differs from the character's most
/// common reading (单 is Shan, not Dan).
const SURNAME_READINGS: &[(char, &str)] = &[
    ('单', "shan"),
    ('解', "xie"),
    ('曾', "zeng"),
    ('仇', "qiu"),
    ('朴', "piao"),
    ('区', "ou"),
    ('查', "zha"),
    ('盖', "ge"),
    ('乐', "yue"),
    ('种', "chong"),
    ('覃', "qin"),
    ('繁', "po"),
    ('员', "yun"),
    ('召', "shao"),
    ('缪', "miao"),
    ('尉', "yu"),
    ('长', "chang"),
    ('车', "che"),
    ('柏', "bai"),
    ('翟', "zhai"),
    ('秘', "bi"),
    ('黑', "he"),
    ('重', "chong"),
    ('华', "hua"),
    ('任', "ren"),
    ('沈', "shen"),
    ('石', "shi"),
    ('万', "wan"),
    ('宁', "ning"),
    ('便', "pian"),
];

/// Characters misread for one another in handwriting or OCR, folded to one
/// representative.
const LOOK_ALIKES: &[(char, char)] = &[
    ('玉', '王'),
    ('已', '己'),
    ('巳', '己'),
    ('未', '末'),
    ('土', '士'),
    ('曰', '日'),
    ('入', '人'),
    ('夭', '天'),
    ('太', '大'),
    ('犬', '大'),
    ('戌', '戊'),
    ('戍', '戊'),
    ('习', '刁'),
    ('季', '李'),
    ('由', '田'),
    ('甲', '申'),
    ('三', '兰'),
    ('朋', '明'),
    ('车', '军'),
    ('注', '汪'),
    ('向', '何'),
    ('汨', '汩'),
    ('拔', '拨'),
    ('赢', '嬴'),
    ('候', '侯'),
    ('孑', '子'),
    ('冶', '治'),
    ('折', '拆'),
];

/// The name with separators removed and traditional characters simplified.
pub fn name_key(name: &str) -> String {
    let normalised = normalise_name(name);
    let simplified = fast2s::convert(&normalised);
    simplified
        .chars()
        .filter(|c| !SEPARATORS.contains(c))
        .collect()
}

/// Tone-less pinyin of the name key, syllables separated by spaces; the
/// first character uses its surname reading where that differs.
pub fn pinyin_key(name: &str) -> String {
    let key = name_key(name);
    let mut out = String::with_capacity(key.len() * 2);
    for (i, c) in key.chars().enumerate() {
        if !out.is_empty() {
            out.push(' ');
        }
        let surname = (i == 0)
            .then(|| SURNAME_READINGS.iter().find(|(s, _)| *s == c))
            .flatten();
        match (surname, c.to_pinyin()) {
            (Some((_, reading)), _) => out.push_str(reading),
            (None, Some(p)) => out.push_str(p.plain()),
            (None, None) => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The name key with look-alike characters folded.
pub fn look_alike_key(name: &str) -> String {
    name_key(name)
        .chars()
        .map(|c| {
            LOOK_ALIKES
                .iter()
                .find(|(a, _)| *a == c)
                .map_or(c, |(_, b)| *b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(name_key("陳 麗"), "陈丽");
        assert_eq!(name_key("买买提•艾力"), name_key("买买提·艾力"));
        assert_eq!(name_key("买买提艾力"), name_key("买买提.艾力"));
        assert_eq!(pinyin_key("王丽"), pinyin_key("王莉"));
        assert_ne!(pinyin_key("王丽"), pinyin_key("王芳"));
        assert_eq!(pinyin_key("单伟"), "shan wei");
        assert_eq!(pinyin_key("单伟"), pinyin_key("山伟"));
        assert_eq!(look_alike_key("玉伟"), look_alike_key("王伟"));
    }
}
