//! Counties with real-looking administrative codes (GB/T 2260 style: two
//! digits province, two prefecture, two county; then three township and
//! three village digits in the 12-digit statistical code).

/// A county the generator places households in.
#[derive(Debug, Clone)]
pub struct County {
    /// Its six-digit administrative code.
    pub code: String,
    /// Province name.
    pub province: String,
    /// Prefecture (city) name.
    pub prefecture: String,
    /// County name.
    pub name: String,
}

/// Real counties: (code, province, prefecture, county).
const REAL: &[(&str, &str, &str, &str)] = &[
    ("522322", "贵州省", "黔西南州", "兴仁市"),
    ("522323", "贵州省", "黔西南州", "普安县"),
    ("522324", "贵州省", "黔西南州", "晴隆县"),
    ("530627", "云南省", "昭通市", "镇雄县"),
    ("530628", "云南省", "昭通市", "彝良县"),
    ("621121", "甘肃省", "定西市", "通渭县"),
    ("621122", "甘肃省", "定西市", "陇西县"),
    ("451224", "广西壮族自治区", "河池市", "东兰县"),
];

/// Households per county once the real ones are full: a county monitors
/// some tens of thousands of households, so a province-scale data set
/// needs about a hundred counties, or every county would hold millions of
/// people and namesakes in one county would be far denser than anywhere
/// real.
const HOUSEHOLDS_PER_COUNTY: usize = 30_000;

/// The counties of a data set of `households` households: the real ones,
/// then, for large sets, made-up counties in the same provinces (codes
/// with prefecture digits 81–99, which the real list does not use).
pub fn counties(households: usize) -> Vec<County> {
    let mut list: Vec<County> = REAL
        .iter()
        .map(|(code, province, prefecture, name)| County {
            code: code.to_string(),
            province: province.to_string(),
            prefecture: prefecture.to_string(),
            name: name.to_string(),
        })
        .collect();
    let wanted = households.div_ceil(HOUSEHOLDS_PER_COUNTY).max(REAL.len());
    let provinces = [
        ("52", "贵州省"),
        ("53", "云南省"),
        ("62", "甘肃省"),
        ("45", "广西壮族自治区"),
    ];
    for j in 0..wanted - REAL.len() {
        let (prefix, province) = provinces[j % provinces.len()];
        let k = j / provinces.len();
        let prefecture = 81 + k / 20;
        let county = 1 + k % 20;
        let syllable = |n: usize| PLACE_SYLLABLES[n % PLACE_SYLLABLES.len()];
        list.push(County {
            code: format!("{prefix}{prefecture:02}{county:02}"),
            province: province.to_string(),
            prefecture: format!("{}{}市", syllable(prefecture), syllable(prefecture * 7)),
            name: format!(
                "{}{}县",
                syllable(k),
                syllable(k / PLACE_SYLLABLES.len() + 11)
            ),
        });
    }
    list
}

/// Syllables for township and village names.
pub const PLACE_SYLLABLES: &[&str] = &[
    "新", "安", "和", "平", "石", "桥", "河", "山", "龙", "凤", "青", "松", "坪", "沟", "坝", "田",
    "家", "湾", "岭", "水", "阳", "光", "明", "兴", "隆", "丰", "乐", "红", "岩", "塘",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_sets_get_more_counties_with_unique_codes_in_the_same_provinces() {
        assert_eq!(counties(2_000).len(), REAL.len());
        let many = counties(3_000_000);
        assert_eq!(many.len(), 100);
        let codes: std::collections::HashSet<&str> = many.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(codes.len(), many.len(), "county codes repeat");
        for c in &many {
            assert_eq!(c.code.len(), 6, "{}", c.code);
            assert!(c.code.bytes().all(|b| b.is_ascii_digit()), "{}", c.code);
            let same_province = REAL
                .iter()
                .any(|r| r.0[..2] == c.code[..2] && r.1 == c.province);
            assert!(same_province, "{} {}", c.code, c.province);
        }
    }
}
