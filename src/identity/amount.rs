//! Money amounts in yuan as exports write them: "12,345.60", "12345.6元",
//! "￥1,000", "１２３４". Stored as whole fen (cents) so no float rounding
//! ever touches a threshold comparison.

use super::text::nfkc;

/// Parse yuan into fen. More than two decimal places are rounded half away
/// from zero, as a cashier would.
pub fn parse_amount_cents(raw: &str) -> Result<i128, String> {
    let folded = nfkc(raw);
    let mut text: &str = folded.trim();
    for prefix in ["￥", "¥", "RMB", "CNY"] {
        text = text.strip_prefix(prefix).unwrap_or(text).trim_start();
    }
    for suffix in ["元", "RMB", "CNY"] {
        text = text.strip_suffix(suffix).unwrap_or(text).trim_end();
    }
    let cleaned: std::borrow::Cow<'_, str> = if text.contains([',', ' ']) {
        text.chars()
            .filter(|c| *c != ',' && *c != ' ')
            .collect::<String>()
            .into()
    } else {
        text.into()
    };
    let bad = || format!("不是有效金额 (not an amount): '{}'", folded.trim());
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(cleaned.as_ref())),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 15
    {
        return Err(bad());
    }
    let whole_fen: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse::<i128>().map_err(|_| bad())?
    } * 100;
    let mut frac_digits = frac.bytes().map(|b| (b - b'0') as i128);
    let tenths = frac_digits.next().unwrap_or(0);
    let hundredths = frac_digits.next().unwrap_or(0);
    let round_up = frac_digits.next().is_some_and(|d| d >= 5);
    let fen = whole_fen + tenths * 10 + hundredths + i128::from(round_up);
    Ok(if negative { -fen } else { fen })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_units() {
        assert_eq!(parse_amount_cents("12,345.60"), Ok(1_234_560));
        assert_eq!(parse_amount_cents("12345.6元"), Ok(1_234_560));
        assert_eq!(parse_amount_cents("￥1,000"), Ok(100_000));
        assert_eq!(parse_amount_cents("１２３４"), Ok(123_400));
        assert_eq!(parse_amount_cents("-5.5"), Ok(-550));
        assert_eq!(parse_amount_cents(".5"), Ok(50));
        assert_eq!(parse_amount_cents("1.005"), Ok(101));
        assert_eq!(parse_amount_cents("1.004"), Ok(100));
    }

    #[test]
    fn junk_is_an_error() {
        for text in ["", "abc", "1.2.3", "12a", "-", "元"] {
            assert!(parse_amount_cents(text).is_err(), "{text}");
        }
    }
}
