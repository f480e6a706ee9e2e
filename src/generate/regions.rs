//! Counties with real-looking administrative codes (GB/T 2260 style: two
//! digits province, two prefecture, two county; then three township and
//! three village digits in the 12-digit statistical code).

pub struct County {
    pub code: &'static str,
    pub province: &'static str,
    pub prefecture: &'static str,
    pub name: &'static str,
}

pub const COUNTIES: &[County] = &[
    County {
        code: "522322",
        province: "贵州省",
        prefecture: "黔西南州",
        name: "兴仁市",
    },
    County {
        code: "522323",
        province: "贵州省",
        prefecture: "黔西南州",
        name: "普安县",
    },
    County {
        code: "522324",
        province: "贵州省",
        prefecture: "黔西南州",
        name: "晴隆县",
    },
    County {
        code: "530627",
        province: "云南省",
        prefecture: "昭通市",
        name: "镇雄县",
    },
    County {
        code: "530628",
        province: "云南省",
        prefecture: "昭通市",
        name: "彝良县",
    },
    County {
        code: "621121",
        province: "甘肃省",
        prefecture: "定西市",
        name: "通渭县",
    },
    County {
        code: "621122",
        province: "甘肃省",
        prefecture: "定西市",
        name: "陇西县",
    },
    County {
        code: "451224",
        province: "广西壮族自治区",
        prefecture: "河池市",
        name: "东兰县",
    },
];

/// Syllables for township and village names.
pub const PLACE_SYLLABLES: &[&str] = &[
    "新", "安", "和", "平", "石", "桥", "河", "山", "龙", "凤", "青", "松", "坪", "沟", "坝", "田",
    "家", "湾", "岭", "水", "阳", "光", "明", "兴", "隆", "丰", "乐", "红", "岩", "塘",
];
