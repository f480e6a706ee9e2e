//! A source's name, checked once. Every lake table of a source is named
//! from it (`staged_<source>`, `quarantine_<source>`, `link_<source>`) and
//! pasted into SQL, so a name that is not a plain identifier never gets
//! past this type.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The longest source name: table names stay well under any store's limit.
const MAX_LEN: usize = 64;

/// A source's name: 1 to 64 lower-case ASCII letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceName(String);

impl SourceName {
    /// `text` as a source name, or an error saying what a name may hold.
    pub fn new(text: &str) -> Result<SourceName, Error> {
        let plain = !text.is_empty()
            && text.len() <= MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain {
            Ok(SourceName(text.to_string()))
        } else {
            Err(Error::BadRequest(format!(
                "source name '{}' must be 1 to {MAX_LEN} lower-case letters, digits and _ (it names lake tables)",
                text.chars().take(MAX_LEN + 1).collect::<String>()
            )))
        }
    }

    /// The roster's own source name (`lake::tables::ROSTER_SOURCE`).
    pub fn roster() -> SourceName {
        SourceName("roster".to_string())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SourceName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SourceName {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        SourceName::new(text)
    }
}

impl TryFrom<String> for SourceName {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        SourceName::new(&text)
    }
}

impl From<SourceName> for String {
    fn from(name: SourceName) -> String {
        name.0
    }
}

impl PartialEq<str> for SourceName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for SourceName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<&str> for SourceName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_source_names() {
        for good in ["health", "civil_affairs", "s2", "roster"] {
            assert_eq!(SourceName::new(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Health",
            "a-b",
            "a b",
            "x;drop table y",
            "医保",
            &"a".repeat(65),
        ] {
            let err = SourceName::new(bad).unwrap_err().to_string();
            assert!(err.contains("lower-case letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_schema_file_with_a_bad_name_is_refused_when_read() {
        #[derive(Deserialize)]
        struct File {
            #[allow(dead_code)]
            name: SourceName,
        }
        let err = toml::from_str::<File>("name = \"Bad Name\"").err().unwrap();
        assert!(err.to_string().contains("must be 1 to 64"), "{err}");
    }
}
