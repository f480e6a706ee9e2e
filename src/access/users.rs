//! The people who log in with a password (`users.toml`), to the PostgreSQL
//! endpoint and to the console alike: name, role, region and a salted
//! SCRAM-SHA-256 password hash. `safetynet user add` writes entries; the
//! cleartext password is never stored.
//!
//! ```toml
//! [[user]]
//! name = "analyst1"
//! role = "analyst"          # admin, analyst, verifier or reader
//! region = "522322"         # optional administrative code prefix
//! password = "scram-sha-256$4096$<salt, hex>$<salted password, hex>"
//! ```
//!
//! The stored value is SCRAM's SaltedPassword (PBKDF2-HMAC-SHA-256, 4096
//! rounds): not the password, but enough to log in as the user, so the file
//! must be readable by the service only.

use std::path::Path;

use anyhow::{Context, Result, bail};
use datafusion_postgres::pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, gen_salted_password};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::logins::hmac_sha256;
use super::{Principal, Role};

/// One `[[user]]` entry of the users file, as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The role's name (checked when the file loads).
    pub role: String,
    /// The administrative code prefix the user is limited to (None: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `scram-sha-256$<rounds>$<salt>$<salted password>`, never the password.
    pub password: String,
}

/// The users file as a whole.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersFile {
    /// Its `[[user]]` entries.
    #[serde(rename = "user", default)]
    pub users: Vec<User>,
}

/// A checked user: who they are and their hash.
#[derive(Debug, Clone)]
struct Account {
    principal: Principal,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
}

/// The users, checked at start-up.
#[derive(Debug, Clone)]
pub struct Users {
    accounts: Vec<Account>,
    /// Derived from the file's content (which holds every user's salted
    /// password, and is readable by the service only): the key of the salts
    /// shown to user names that do not exist.
    secret: [u8; 32],
}

/// `scram-sha-256$<iterations>$<salt hex>$<salted password hex>` for a password.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    format!(
        "scram-sha-256${SCRAM_ITERATIONS}${}${}",
        hex::encode(salt),
        hex::encode(salted)
    )
}

fn parse_hash(user: &str, text: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let parts: Vec<&str> = text.split('$').collect();
    let [scheme, iterations, salt, salted] = parts.as_slice() else {
        bail!(
            "user {user}: password must be a hash written by `safetynet user add`, not a password"
        );
    };
    if *scheme != "scram-sha-256" || iterations.parse::<usize>().ok() != Some(SCRAM_ITERATIONS) {
        bail!(
            "user {user}: password hash must be scram-sha-256 with {SCRAM_ITERATIONS} iterations"
        );
    }
    let salt = hex::decode(salt).with_context(|| format!("user {user}: bad salt"))?;
    let salted = hex::decode(salted).with_context(|| format!("user {user}: bad hash"))?;
    if salt.len() < 8 || salted.len() != 32 {
        bail!("user {user}: the password hash is damaged");
    }
    Ok((salt, salted))
}

impl Users {
    /// Read and check the users file at `path`: roles, regions and hashes; an error names the file and the user.
    pub fn load(path: &Path) -> Result<Users> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SQL users file {}", path.display()))?;
        let file: UsersFile =
            toml::from_str(&text).with_context(|| format!("in users file {}", path.display()))?;
        let mut accounts = Vec::new();
        for u in file.users {
            if accounts
                .iter()
                .any(|a: &Account| a.principal.name == u.name)
            {
                bail!("{}: user {} is listed twice", path.display(), u.name);
            }
            if let Some(r) = &u.region {
                crate::access::tokens::check_region(r)
                    .with_context(|| format!("{}: user {}", path.display(), u.name))?;
            }
            let (salt, salted_password) =
                parse_hash(&u.name, &u.password).with_context(|| path.display().to_string())?;
            accounts.push(Account {
                principal: Principal {
                    name: u.name.clone(),
                    role: Role::parse(&u.role)
                        .with_context(|| format!("{}: user {}", path.display(), u.name))?,
                    region: u.region.clone(),
                },
                salt,
                salted_password,
            });
        }
        if accounts.is_empty() {
            bail!("{}: no [[user]] entries", path.display());
        }
        let secret = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(b"safetynet: salts of unknown users\0");
            h.update(text.as_bytes());
            h.finalize().into()
        };
        Ok(Users { accounts, secret })
    }

    /// The caller `name` logs in as, if the file has that user.
    pub fn principal(&self, name: &str) -> Option<Principal> {
        self.accounts
            .iter()
            .find(|a| a.principal.name == name)
            .map(|a| a.principal.clone())
    }

    /// The SCRAM salt and salted password of `name`, for a login over the
    /// PostgreSQL protocol. A user name that does not exist gets the same
    /// exchange as one that does: a salt that is the same at every attempt
    /// (derived from the server's secret and the name, so it cannot be told
    /// from a real one) and a salted password no password produces. The
    /// login then fails at the proof, with the same error as a wrong
    /// password: nobody can learn which names exist.
    pub fn scram_credentials(&self, name: &str) -> (Vec<u8>, Vec<u8>) {
        match self.accounts.iter().find(|a| a.principal.name == name) {
            Some(a) => (a.salt.clone(), a.salted_password.clone()),
            None => {
                let salt = hmac_sha256(&self.secret, format!("salt:{name}").as_bytes());
                let salted = hmac_sha256(&self.secret, format!("password:{name}").as_bytes());
                (salt[..16].to_vec(), salted.to_vec())
            }
        }
    }

    /// Who logs in with this name and password (the console's form), or
    /// None. An unknown name costs the same key derivation as a known one
    /// and the comparison takes the same time whatever matches, so the
    /// answer's timing does not tell which names exist.
    pub fn check_password(&self, name: &str, password: &str) -> Option<Principal> {
        let (salt, salted) = self.scram_credentials(name);
        let offered = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        let same = offered.len() == salted.len()
            && offered
                .iter()
                .zip(&salted)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        self.principal(name)
    }
}

/// Add or replace a user in the file (created if missing).
pub fn add(
    path: &Path,
    name: &str,
    role: Role,
    region: Option<&str>,
    password: &str,
) -> Result<()> {
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    if let Some(r) = region {
        crate::access::tokens::check_region(r)?;
    }
    let mut file: UsersFile = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("in {}", path.display()))?,
        Err(_) => UsersFile::default(),
    };
    file.users.retain(|u| u.name != name);
    file.users.push(User {
        name: name.to_string(),
        role: role.name().to_string(),
        region: region.map(str::to_string),
        password: hash_password(password),
    });
    std::fs::write(path, toml::to_string(&file)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_plain_passwords_are_refused() {
        let h = hash_password("correct horse");
        let (salt, salted) = parse_hash("u", &h).unwrap();
        assert_eq!(
            salted,
            gen_salted_password("correct horse", &salt, SCRAM_ITERATIONS)
        );
        assert_ne!(h, hash_password("correct horse"), "salted");
        assert!(parse_hash("u", "correct horse").is_err());
    }

    #[test]
    fn a_password_is_checked_against_the_stored_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add(
            &path,
            "clerk",
            Role::Verifier,
            Some("522322"),
            "correct horse",
        )
        .unwrap();
        let users = Users::load(&path).unwrap();
        let p = users.check_password("clerk", "correct horse").unwrap();
        assert_eq!(
            (p.role, p.region.as_deref()),
            (Role::Verifier, Some("522322"))
        );
        assert!(users.check_password("clerk", "correct horse ").is_none());
        assert!(users.check_password("nobody", "correct horse").is_none());
        // An unknown name gets the same-looking salt every time.
        assert_eq!(
            users.scram_credentials("nobody"),
            users.scram_credentials("nobody")
        );
    }
}
