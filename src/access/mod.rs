//! Who may see and do what (权限): roles, region scopes, masking of
//! personal identifiers, API tokens and the audit log. Shared by the HTTP
//! API and the SQL endpoint.

pub mod audit;
pub mod read_only;
pub mod secure;
pub mod tokens;

use anyhow::{Result, bail};
use serde::Serialize;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, raw values included, and the audit log.
    Admin,
    /// Query every region; identifiers masked; may export results.
    Analyst,
    /// Read warnings and post verification results; identifiers masked.
    Verifier,
    /// Read only; identifiers masked.
    Reader,
}

impl Role {
    pub const NAMES: &[&str] = &["admin", "analyst", "verifier", "reader"];

    pub fn parse(text: &str) -> Result<Role> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "admin" => Role::Admin,
            "analyst" => Role::Analyst,
            "verifier" => Role::Verifier,
            "reader" => Role::Reader,
            other => bail!("role '{other}' is not one of {}", Self::NAMES.join(", ")),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Verifier => "verifier",
            Role::Reader => "reader",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Administrative code prefix the caller is limited to (None: all).
    pub region: Option<String>,
}

impl Principal {
    pub fn raw_values(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn can_verify(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Verifier)
    }

    /// Whether a row with these region codes (any level, most specific
    /// last) is inside the caller's region. Rows with no code are visible
    /// only to unscoped callers.
    pub fn sees_region(&self, codes: &[Option<&str>]) -> bool {
        match &self.region {
            None => true,
            Some(prefix) => codes
                .iter()
                .flatten()
                .any(|code| code.starts_with(prefix.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_scope_is_a_code_prefix() {
        let county = Principal {
            name: "县办".into(),
            role: Role::Reader,
            region: Some("522322".into()),
        };
        assert!(county.sees_region(&[Some("522322"), Some("522322003204")]));
        assert!(!county.sees_region(&[Some("522323"), Some("522323001001")]));
        assert!(!county.sees_region(&[None]));
        assert!(!county.can_verify() && !county.raw_values());
        assert_eq!(Role::parse(" Admin ").unwrap(), Role::Admin);
        assert!(Role::parse("root").is_err());
    }
}
