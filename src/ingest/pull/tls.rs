//! Encrypted connections to departments' PostgreSQL exchange databases.
//!
//! The connection URL says how, with `sslmode` as libpq (and so `psql`)
//! reads it, so a URL a database administrator already uses works here:
//!
//! | `sslmode` | encrypted | server checked |
//! |---|---|---|
//! | `disable` | no | no |
//! | `prefer` (the default) | when the server offers it | no |
//! | `require` | yes | no |
//! | `verify-ca` | yes | its certificate is signed by a trusted authority |
//! | `verify-full` | yes | that, and the certificate names the URL's host |
//!
//! The trusted authorities are the PEM file `sslrootcert` names, else the
//! system's. tokio-postgres itself knows only the first three modes; the
//! checks of the last two are made here, in the certificate verifier.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing: the connection is encrypted, but to whoever answers.
    Nothing,
    /// Signed by a trusted authority (`verify-ca`).
    Authority,
    /// Signed by a trusted authority and issued for the host (`verify-full`).
    AuthorityAndHost,
}

/// A PostgreSQL URL made ready to connect with.
pub struct PostgresTls {
    /// The URL as tokio-postgres reads it: `verify-ca` and `verify-full`
    /// become `require` (the checks are the connector's), `sslrootcert`
    /// is taken out.
    pub url: String,
    /// `sslmode` as given (`prefer` when the URL says nothing).
    pub mode: String,
    /// What the connector checks.
    pub check: Check,
    /// The connector, for `tokio_postgres::connect`.
    pub connector: MakeRustlsConnect,
}

/// Read `sslmode` and `sslrootcert` from `url` (either form: a
/// `postgresql://` URL or `key=value` words). Errors never quote the URL,
/// which holds a password.
pub fn postgres(url: &str) -> Result<PostgresTls> {
    let (mut params, rebuild): (Vec<(String, String)>, Rebuild) = split_params(url)?;
    let mut mode = "prefer".to_string();
    let mut root_file = None;
    params.retain(|(key, value)| match key.as_str() {
        "sslmode" => {
            mode = value.clone();
            !value.starts_with("verify-")
        }
        "sslrootcert" => {
            root_file = Some(value.clone());
            false
        }
        _ => true,
    });
    let check = match mode.as_str() {
        "verify-full" => Check::AuthorityAndHost,
        "verify-ca" => Check::Authority,
        "disable" | "prefer" | "require" => Check::Nothing,
        other => bail!(
            "sslmode '{other}' in the URL is not one of disable, prefer, require, verify-ca, \
             verify-full"
        ),
    };
    if check != Check::Nothing {
        params.push(("sslmode".into(), "require".into()));
    }
    let roots = match (check, &root_file) {
        (Check::Nothing, _) => None,
        (_, Some(file)) => Some(roots_from_file(Path::new(file))?),
        (_, None) => Some(system_roots()?),
    };
    Ok(PostgresTls {
        url: rebuild.with(&params),
        mode,
        check,
        connector: MakeRustlsConnect::new(client_config(check, roots)?),
    })
}

/// How to put a URL back together after its parameters changed.
enum Rebuild {
    /// A `postgresql://` URL, its query replaced.
    Url(url::Url),
    /// `key=value` words.
    Words,
}

impl Rebuild {
    fn with(&self, params: &[(String, String)]) -> String {
        match self {
            Rebuild::Url(url) => {
                let mut url = url.clone();
                url.set_query(None);
                if !params.is_empty() {
                    url.query_pairs_mut().extend_pairs(params);
                }
                url.to_string()
            }
            Rebuild::Words => params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn split_params(url: &str) -> Result<(Vec<(String, String)>, Rebuild)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = url::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("the PostgreSQL URL cannot be read: {e}"))?;
        let params = parsed.query_pairs().into_owned().collect();
        return Ok((params, Rebuild::Url(parsed)));
    }
    let params = url
        .split_whitespace()
        .map(|word| match word.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (word.to_string(), String::new()),
        })
        .collect();
    Ok((params, Rebuild::Words))
}

fn roots_from_file(file: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(file)
        .with_context(|| format!("sslrootcert {}: cannot be read", file.display()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("sslrootcert {}: not PEM", file.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("sslrootcert {}: not a usable certificate", file.display()))?;
    }
    if roots.is_empty() {
        bail!("sslrootcert {}: holds no certificate", file.display());
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        bail!(
            "sslmode asks to check the server's certificate, but this system trusts no \
             certificate authority: name the department's in the URL, sslrootcert=FILE"
        );
    }
    Ok(roots)
}

fn client_config(check: Check, roots: Option<RootCertStore>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = match roots {
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("the trusted certificate authorities")?,
        ),
        None => None,
    };
    let verifier = ServerCheck {
        check,
        webpki,
        provider: provider.clone(),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The server certificate check for a [`Check`]. Handshake signatures are
/// always verified: even unchecked, the connection is encrypted end to end.
#[derive(Debug)]
struct ServerCheck {
    check: Check,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.check == Check::Authority => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(url: &str) -> (String, String, Check) {
        let tls = postgres(url).unwrap();
        (tls.url, tls.mode, tls.check)
    }

    #[test]
    fn sslmode_reads_as_libpq_reads_it() {
        let (url, mode, check) = read("postgresql://u:p%40ss@db.example:5432/x");
        assert_eq!(url, "postgresql://u:p%40ss@db.example:5432/x");
        assert_eq!((mode.as_str(), check), ("prefer", Check::Nothing));

        let (url, mode, check) = read("postgresql://u:p@h/x?sslmode=require&connect_timeout=5");
        assert_eq!(
            url,
            "postgresql://u:p@h/x?sslmode=require&connect_timeout=5"
        );
        assert_eq!((mode.as_str(), check), ("require", Check::Nothing));

        let (url, _, check) = read("host=h user=u sslmode=verify-ca dbname=x");
        assert_eq!(url, "host=h user=u dbname=x sslmode=require");
        assert_eq!(check, Check::Authority);
    }

    #[test]
    fn a_bad_mode_or_root_file_is_named_and_the_url_is_not_quoted() {
        let err = postgres("postgresql://u:secret@h/x?sslmode=verify")
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("sslmode 'verify'"), "{text}");
        assert!(!text.contains("secret"), "{text}");

        let err = postgres("postgresql://u:secret@h/x?sslmode=verify-full&sslrootcert=/nope.pem")
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(text.contains("sslrootcert /nope.pem"), "{text}");
        assert!(!text.contains("secret"), "{text}");

        let empty = tempfile::NamedTempFile::new().unwrap();
        let url = format!(
            "postgresql://u:p@h/x?sslmode=verify-ca&sslrootcert={}",
            empty.path().display()
        );
        let text = format!("{:#}", postgres(&url).err().unwrap());
        assert!(text.contains("holds no certificate"), "{text}");
    }
}
