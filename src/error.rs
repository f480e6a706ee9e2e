//! The errors callers branch on. Library functions return `anyhow::Result`
//! with context; where a caller must tell one failure from another (a held
//! lock, an unknown warning, a bad outcome, bad settings, a lake that
//! cannot be reached, a refused or overloaded request), the failure is one
//! of these, found again with [`Error::find`]. Each maps once to an HTTP
//! status and a process exit code; anything else is an internal error,
//! logged with its whole chain and never sent to a client.

use std::fmt;

/// A failure a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another run holds the lake's run lock.
    #[error(
        "another run holds this lake (holder {holder}, pid {pid}, since {since}, lease until {until})"
    )]
    LockHeld {
        /// Who holds it.
        holder: String,
        /// Its process id.
        pid: u32,
        /// Since when (UTC).
        since: String,
        /// When its lease runs out unless renewed (UTC).
        until: String,
    },
    /// No such warning.
    #[error("no warning {0}")]
    UnknownWarning(String),
    /// A verification outcome that is not one of the known ones.
    #[error("outcome '{given}' must be one of {allowed}")]
    BadOutcome {
        /// What was given.
        given: String,
        /// The outcomes allowed here.
        allowed: String,
    },
    /// A configuration file that cannot be used: which file, which key, why.
    #[error("{file}: {key}: {message}")]
    BadSettings {
        /// The file.
        file: String,
        /// The key (or line and field) at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The lake's storage cannot be reached or read.
    #[error("the lake is unavailable: {0}")]
    LakeUnavailable(String),
    /// Something asked for that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too much at once: the caller should retry later.
    #[error("{0}")]
    Overloaded(String),
    /// The request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
}

/// The kind of an [`Error`], for statuses and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A run holds the lake; try later.
    Busy,
    /// The thing asked for does not exist.
    NotFound,
    /// The request or the configuration is wrong.
    Invalid,
    /// Not allowed.
    Forbidden,
    /// Storage, or the service, cannot take it now.
    Unavailable,
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        match self {
            Error::LockHeld { .. } | Error::Overloaded(_) => Kind::Busy,
            Error::UnknownWarning(_) | Error::NotFound(_) => Kind::NotFound,
            Error::BadOutcome { .. } | Error::BadSettings { .. } | Error::BadRequest(_) => {
                Kind::Invalid
            }
            Error::Forbidden(_) => Kind::Forbidden,
            Error::LakeUnavailable(_) => Kind::Unavailable,
        }
    }

    /// The HTTP status this failure is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            // A run holding the lake is over in minutes: retry.
            Error::LockHeld { .. } | Error::Overloaded(_) | Error::LakeUnavailable(_) => 503,
            Error::UnknownWarning(_) | Error::NotFound(_) => 404,
            Error::BadOutcome { .. } | Error::BadRequest(_) => 400,
            Error::BadSettings { .. } => 500,
            Error::Forbidden(_) => 403,
        }
    }

    /// The process exit code (sysexits.h): 75 try again later, 66 no such
    /// input, 64 usage, 78 configuration, 77 permission, 69 unavailable.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::LockHeld { .. } | Error::Overloaded(_) => 75,
            Error::UnknownWarning(_) | Error::NotFound(_) => 66,
            Error::BadOutcome { .. } | Error::BadRequest(_) => 64,
            Error::BadSettings { .. } => 78,
            Error::Forbidden(_) => 77,
            Error::LakeUnavailable(_) => 69,
        }
    }

    /// The first [`Error`] in an error's chain, if any.
    pub fn find(error: &anyhow::Error) -> Option<&Error> {
        error.chain().find_map(|e| e.downcast_ref::<Error>())
    }

    /// A bad-settings error.
    pub fn settings(
        file: impl fmt::Display,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::BadSettings {
            file: file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn typed_errors_survive_context_and_map_once() {
        let e: anyhow::Result<()> = Err(Error::UnknownWarning("W1".into()).into());
        let e = e.context("verifying").unwrap_err();
        let found = Error::find(&e).expect("found under the context");
        assert_eq!(found.http_status(), 404);
        assert_eq!(found.exit_code(), 66);
        assert_eq!(found.kind(), Kind::NotFound);
        let plain = anyhow::anyhow!("disk full");
        assert!(Error::find(&plain).is_none());
        let s = Error::settings(
            "pipelines/linkage.toml",
            "defaults.blocking[2]",
            "does not parse",
        );
        assert_eq!(
            s.to_string(),
            "pipelines/linkage.toml: defaults.blocking[2]: does not parse"
        );
    }
}
