//! Dates as departments write them: 2026-08-14, 2026/8/14, 2026.8.14,
//! 20260814, 2026年8月14日, with or without a time after them, and Excel
//! serial numbers (days since 1899-12-30, as spreadsheets store dates).
//! A schema may list extra chrono formats for a county's own habit
//! (e.g. "%d/%m/%Y"); those are tried first.

use super::text::nfkc;
use chrono::{Duration, NaiveDate};

/// Excel stores dates as days since 1899-12-30 (the 1900 leap-year bug is
/// absorbed by starting the count two days early). Serials below 61 fall
/// before the phantom 1900-02-29 and never occur in these extracts.
pub fn excel_serial_to_date(serial: f64) -> Option<NaiveDate> {
    if !(61.0..=2_958_465.0).contains(&serial) {
        return None;
    }
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(Duration::days(serial.floor() as i64))
}

/// Parse a date. `extra_formats` are chrono format strings tried first.
pub fn parse_date(raw: &str, extra_formats: &[String]) -> Result<NaiveDate, String> {
    let folded = nfkc(raw);
    let text = folded.trim();
    for format in extra_formats {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return Ok(d);
        }
    }
    // Drop a time of day: "2026-08-14 10:32:00", "2026-08-14T10:32".
    let date_part = text.split([' ', 'T']).next().unwrap_or(text);

    if let Some(d) = parse_ymd_separated(date_part) {
        return Ok(d);
    }
    if date_part.len() == 8 && date_part.bytes().all(|b| b.is_ascii_digit()) {
        let (y, m, d) = (&date_part[0..4], &date_part[4..6], &date_part[6..8]);
        if let Some(d) = ymd(y, m, d) {
            return Ok(d);
        }
    }
    if let Ok(serial) = date_part.parse::<f64>() {
        // Five-digit serials cover 1927–2173; anything else numeric is not a date.
        if (10_000.0..100_000.0).contains(&serial)
            && let Some(d) = excel_serial_to_date(serial)
        {
            return Ok(d);
        }
    }
    Err(format!("无法识别的日期 (not a date): '{}'", text))
}

/// Year, month, day with one of the separators - / . or 年 月 日.
fn parse_ymd_separated(text: &str) -> Option<NaiveDate> {
    let cleaned = text.trim_end_matches('日');
    let mut parts = cleaned.split(['-', '/', '.', '年', '月']);
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 {
        return None;
    }
    ymd(y, m, d)
}

fn ymd(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    if [y, m, d]
        .iter()
        .any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    if !(1880..=2100).contains(&year) {
        return None;
    }
    NaiveDate::from_ymd_opt(year, m.parse().ok()?, d.parse().ok()?)
}

/// China's time zone: Asia/Shanghai is UTC+8 all year, without daylight
/// saving. Schedules, "today" and dates given without a time are in it.
pub fn china() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// Today's date in China.
pub fn china_today() -> NaiveDate {
    chrono::Utc::now().with_timezone(&china()).date_naive()
}

/// The first instant of `date` in China, as UTC.
pub fn china_midnight(date: NaiveDate) -> chrono::DateTime<chrono::Utc> {
    date.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_local_timezone(china())
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn every_common_form() {
        for text in [
            "2026-08-14",
            "2026/8/14",
            "2026.08.14",
            "20260814",
            "2026年8月14日",
            "2026年08月14日",
            " 2026-08-14 10:32:00 ",
            "2026-08-14T10:32:00",
            "46248",
            "46248.5",
            "２０２６－０８－１４",
        ] {
            assert_eq!(parse_date(text, &[]), Ok(d(2026, 8, 14)), "{text}");
        }
    }

    #[test]
    fn impossible_dates_are_errors() {
        for text in [
            "2026-02-30",
            "2026-13-01",
            "abc",
            "123",
            "2026-08",
            "99999999",
        ] {
            assert!(parse_date(text, &[]).is_err(), "{text}");
        }
    }

    #[test]
    fn schema_formats_come_first() {
        let formats = vec!["%d/%m/%Y".to_string()];
        assert_eq!(parse_date("14/08/2026", &formats), Ok(d(2026, 8, 14)));
        assert!(parse_date("14/08/2026", &[]).is_err());
    }

    #[test]
    fn excel_serials() {
        assert_eq!(excel_serial_to_date(61.0), Some(d(1900, 3, 1)));
        assert_eq!(excel_serial_to_date(45292.0), Some(d(2024, 1, 1)));
        assert_eq!(excel_serial_to_date(-1.0), None);
    }
}
