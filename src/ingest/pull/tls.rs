//! Encrypted connections to departments' exchange databases.
//!
//! A PostgreSQL URL says how with `sslmode` as libpq (and so `psql`)
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
//!
//! A MySQL or MariaDB URL says it with `ssl-mode` and `ssl-ca`, as the
//! `mysql` client's options: `DISABLED` (the default here), `REQUIRED`,
//! `VERIFY_IDENTITY` (the default when `ssl-ca` is given); and
//! `ssl-server-name`, safetynet's own, for the name the certificate is
//! issued for when the URL reaches the server by its address (as
//! PostgreSQL's `host` beside `hostaddr`). Without `ssl-ca`, the
//! authorities trusted are Mozilla's (mysql_async's). Two of the client's
//! modes are refused with the reason: `PREFERRED` (mysql_async cannot fall
//! back to plaintext) and `VERIFY_CA` (mysql_async 0.37.1 fails to ignore
//! the name with rustls 0.23, so it would check the name anyway).

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
        (_, Some(file)) => Some(roots_from_file("sslrootcert", Path::new(file))?),
        (_, None) => Some(system_roots()?),
    };
    Ok(PostgresTls {
        url: rebuild.with(&params),
        mode,
        check,
        connector: MakeRustlsConnect::new(client_config(check, roots)?),
    })
}

/// A MySQL URL made ready to connect with.
pub struct MysqlTls {
    /// The URL without `ssl-mode` and `ssl-ca`, which mysql_async does not
    /// know.
    pub url: String,
    /// `ssl-mode` as given, upper case (`DISABLED` when unset).
    pub mode: String,
    /// What is checked, when encrypted.
    pub check: Check,
    /// mysql_async's settings; `None` for a plaintext connection.
    pub ssl: Option<mysql_async::SslOpts>,
}

/// Read `ssl-mode` and `ssl-ca` from a `mysql://` URL. Errors never quote
/// the URL.
pub fn mysql(url: &str) -> Result<MysqlTls> {
    let parsed = url::Url::parse(url)
        .map_err(|_| anyhow::anyhow!("not a mysql://user:password@host:port/database URL"))?;
    let mut params: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let (mut mode, mut ca, mut server_name) = (None, None, None);
    params.retain(|(key, value)| match key.replace('_', "-").as_str() {
        "ssl-mode" => {
            mode = Some(value.to_ascii_uppercase());
            false
        }
        "ssl-ca" => {
            ca = Some(value.clone());
            false
        }
        "ssl-server-name" => {
            server_name = Some(value.clone());
            false
        }
        _ => true,
    });
    let mode = mode.unwrap_or_else(|| {
        if ca.is_some() {
            "VERIFY_IDENTITY"
        } else {
            "DISABLED"
        }
        .into()
    });
    let check = match mode.as_str() {
        "DISABLED" => None,
        "REQUIRED" => Some(Check::Nothing),
        "VERIFY_IDENTITY" => Some(Check::AuthorityAndHost),
        "VERIFY_CA" => bail!(
            "ssl-mode VERIFY_CA cannot be offered (the MySQL client library would check the \
             host name anyway): use VERIFY_IDENTITY, with ssl-server-name=NAME when the URL \
             reaches the server by an address its certificate does not name"
        ),
        other => bail!(
            "ssl-mode '{other}' in the URL is not one of DISABLED, REQUIRED, VERIFY_IDENTITY \
             (PREFERRED cannot be offered: the client cannot fall back to plaintext)"
        ),
    };
    let ssl = match check {
        None => None,
        Some(check) => {
            let mut ssl = mysql_async::SslOpts::default()
                .with_danger_accept_invalid_certs(check == Check::Nothing)
                .with_danger_tls_hostname_override(server_name);
            if let Some(file) = &ca {
                let file = Path::new(file);
                roots_from_file("ssl-ca", file)?;
                ssl = ssl
                    .with_root_certs(vec![file.to_path_buf().into()])
                    .with_disable_built_in_roots(true);
            }
            Some(ssl)
        }
    };
    // mysql_async builds its TLS settings with rustls's process-wide
    // provider; this program's is ring, as everywhere else in it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(MysqlTls {
        url: Rebuild::Url(parsed).with(&params),
        mode,
        check: check.unwrap_or(Check::Nothing),
        ssl,
    })
}

/// Log how a pull connected: a warning when its connection is not
/// encrypted (`Some(false)`) or its server not checked, as an extract
/// carries names and ID numbers and a URL that forgot to ask for TLS
/// should not go unnoticed.
pub fn report(source: &str, database: &str, mode: &str, encrypted: Option<bool>, check: Check) {
    match (encrypted, check) {
        (Some(false), _) => tracing::warn!(
            source,
            mode,
            "the connection to {database} is not encrypted: names and ID numbers cross the \
             network in clear; ask for TLS in the URL (docs: README, Pull sources) (连接未加密)"
        ),
        (_, Check::Nothing) => tracing::warn!(
            source,
            mode,
            encrypted,
            "the {database} server's certificate is not checked: ask for verification in the \
             URL to be sure it is the department's server (未校验服务器证书)"
        ),
        _ => tracing::info!(source, mode, encrypted, "connected to {database}"),
    }
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

/// The certificates in the PEM file that the URL's parameter `param`
/// names.
fn roots_from_file(param: &str, file: &Path) -> Result<RootCertStore> {
    Ok(authorities_in(param, file)?.1)
}

/// The certificate authorities in a PEM file, as found and as a trust
/// store; `setting` is the key or URL parameter that named the file, so
/// an error says where it came from.
fn authorities_in(
    setting: &str,
    file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, RootCertStore)> {
    let mut roots = RootCertStore::empty();
    let mut found = Vec::new();
    let named = || format!("{setting} {}", file.display());
    let certs = CertificateDer::pem_file_iter(file)
        .with_context(|| format!("{}: cannot be read", named()))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("{}: not PEM", named()))?;
        roots
            .add(cert.clone())
            .with_context(|| format!("{}: not a usable certificate", named()))?;
        found.push(cert);
    }
    if roots.is_empty() {
        bail!("{}: holds no certificate", named());
    }
    Ok((found, roots))
}

/// An HTTP client for an exchange interface or the monitoring system.
/// Without `ca_file` it trusts the system's certificate authorities; with
/// it, only the authorities in that PEM file (as `curl --cacert`), so a
/// provincial authority can be trusted for one interface without trusting
/// it for the whole machine. `setting` names where the file was given.
pub fn http_client(
    timeout: std::time::Duration,
    ca_file: Option<&Path>,
    setting: &str,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(file) = ca_file {
        builder = builder.tls_built_in_root_certs(false);
        for cert in authorities_in(setting, file)?.0 {
            let cert = reqwest::Certificate::from_der(&cert)
                .with_context(|| format!("{setting} {}", file.display()))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .with_context(|| format!("cannot make an HTTP client ({setting})"))
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
    fn ssl_mode_reads_as_the_mysql_client_reads_it() {
        let plain = mysql("mysql://u:p@h:3306/x").unwrap();
        assert_eq!(
            (plain.url.as_str(), plain.mode.as_str()),
            ("mysql://u:p@h:3306/x", "DISABLED")
        );
        assert!(plain.ssl.is_none());

        let required = mysql("mysql://u:p@h:3306/x?ssl-mode=required&prefer_socket=false").unwrap();
        assert_eq!(required.url, "mysql://u:p@h:3306/x?prefer_socket=false");
        assert_eq!(required.check, Check::Nothing);
        let ssl = required.ssl.unwrap();
        assert!(ssl.accept_invalid_certs());

        let full =
            mysql("mysql://u:p@10.1.2.3/x?ssl_mode=VERIFY_IDENTITY&ssl-server-name=db.example")
                .unwrap();
        assert_eq!(full.url, "mysql://u:p@10.1.2.3/x");
        let ssl = full.ssl.unwrap();
        assert!(!ssl.accept_invalid_certs() && !ssl.skip_domain_validation());
        assert_eq!(ssl.tls_hostname_override(), Some("db.example"));

        let err = mysql("mysql://u:p@h/x?ssl-mode=VERIFY_CA").err().unwrap();
        assert!(format!("{err}").contains("use VERIFY_IDENTITY"), "{err}");

        let err = mysql("mysql://u:secret@h/x?ssl-mode=PREFERRED")
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("cannot fall back") && !text.contains("secret"),
            "{text}"
        );
        let err = mysql("mysql://u:secret@h/x?ssl-ca=/nope.pem")
            .err()
            .unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("ssl-ca") && text.contains("/nope.pem"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
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
