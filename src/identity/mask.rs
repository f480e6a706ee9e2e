//! Masking of personal identifiers for roles not allowed raw values
//! (脱敏): ID numbers keep their first 6 and last 4 characters (region and
//! check digit), names keep the surname.

/// Two-character surnames, kept whole when masking.
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "端木", "独孤", "南宫", "西门", "百里",
];

/// `430102199001011234` → `430102********1234`. Values of 10 characters
/// or fewer are masked whole, since keeping 10 would reveal them.
pub fn id_number(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// `张三丰` → `张*`, `欧阳娜娜` → `欧阳*`, `Mary Smith` → `M*`, and a
/// minority name written `阿依古丽·买买提` → `阿*`.
pub fn name(value: &str) -> String {
    let value = value.trim();
    if value.is_empty() {
        return String::new();
    }
    let surname = COMPOUND_SURNAMES
        .iter()
        .find(|s| value.starts_with(**s) && value.chars().count() > 2)
        .map(|s| s.to_string())
        .unwrap_or_else(|| value.chars().take(1).collect());
    format!("{surname}*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_six_and_four() {
        assert_eq!(id_number("430102199001011234"), "430102********1234");
        assert_eq!(id_number("43010219900101123X"), "430102********123X");
        assert_eq!(id_number("430102900101123"), "430102*****1123");
        assert_eq!(id_number("12345"), "*****");
        assert_eq!(id_number(""), "");
    }

    #[test]
    fn names_keep_the_surname() {
        assert_eq!(name("张三丰"), "张*");
        assert_eq!(name("王伟"), "王*");
        assert_eq!(name("欧阳娜娜"), "欧阳*");
        assert_eq!(name("欧阳"), "欧*");
        assert_eq!(name("阿依古丽·买买提"), "阿*");
        assert_eq!(name(" "), "");
    }
}
