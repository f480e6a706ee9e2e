//! Pure functions that turn the identifiers and values departments write by
//! hand into canonical form: resident ID numbers, dates, amounts and text.
//! Nothing here touches I/O, so every rule is unit- and property-tested.

pub mod amount;
pub mod chinese_name;
pub mod date;
pub mod id_number;
pub mod mask;
pub mod text;

pub use amount::parse_amount_cents;
pub use date::{china, china_midnight, china_today, excel_serial_to_date, parse_date};
pub use id_number::{IdNumber, normalise_id_number};
pub use text::{normalise_name, normalise_text};
