//! The PostgreSQL wire-protocol endpoint of `safetynet serve` (SQL 接口):
//! psql, DBeaver, psycopg, JDBC and BI tools connect with a user from the
//! users file (SCRAM-SHA-256), see the lake through their role and region,
//! can only read, and every statement is audited.
//!
//! The accounts are `access::users`' (the console's too); `connection`
//! holds the per-connection handlers built on datafusion-postgres, and the
//! SCRAM password source over those accounts.

pub mod connection;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use datafusion_postgres::pgwire::api::ConnectionManager;
use datafusion_postgres::pgwire::tokio::{TlsAcceptor, process_socket, tokio_rustls};

use crate::access::Access;
use crate::access::audit::AuditLog;
use crate::access::users::Users;

pub use crate::config::SqlConfig;

/// What every connection shares.
pub struct Shared {
    /// The lake as each user may see it.
    pub access: Access,
    /// Who may log in.
    pub users: Users,
    /// Where every statement is audited.
    pub audit: AuditLog,
    /// The longest a statement may run.
    pub statement_timeout: Duration,
    /// The most memory one statement may use.
    pub memory_limit_bytes: usize,
    /// TLS, when the endpoint has a certificate.
    pub tls: Option<TlsAcceptor>,
    /// pgwire's open connections, so a cancel request finds its statement.
    pub connections: Arc<ConnectionManager>,
}

fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read TLS private key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not fit together")?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Check the configuration and bind: every mistake (users file, TLS files,
/// address) is a start-up error, never a silent plaintext fallback.
pub async fn bind(
    config: &SqlConfig,
    resolve: impl Fn(&str) -> String,
    access: Access,
    listen: Option<String>,
) -> Result<(tokio::net::TcpListener, Arc<Shared>)> {
    let users = Users::load(Path::new(&resolve(&config.users)))?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(load_tls(Path::new(&resolve(c)), Path::new(&resolve(k)))?),
        (None, None) => None,
        _ => anyhow::bail!("[sql] needs both tls_cert and tls_key, or neither"),
    };
    let address = listen.unwrap_or_else(|| config.listen.clone());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot listen on {address} for the SQL endpoint"))?;
    let shared = Arc::new(Shared {
        audit: AuditLog::start(access.lake().clone()),
        access,
        users,
        statement_timeout: Duration::from_secs_f64(config.statement_timeout_seconds.max(0.001)),
        memory_limit_bytes: config.memory_limit_mb.max(64) * 1024 * 1024,
        tls,
        connections: Arc::new(ConnectionManager::new()),
    });
    Ok((listener, shared))
}

/// Accept connections until `shutdown` completes. Each connection is
/// served on `queries` (the runtime that runs queries), so a burst of
/// connections or heavy statements never takes the threads this loop and
/// the health checks run on. Above the connection limit a client is told
/// so (53300) once it says hello; as many again may wait to be told, and
/// beyond that a connection is closed at once, so a flood holds no memory.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    queries: tokio::runtime::Handle,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    tracing::info!(
        address = %listener.local_addr()?,
        tls = shared.tls.is_some(),
        max_connections = shared.access.limits().sql_connections,
        "SQL endpoint listening"
    );
    let refusing = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let quick_refusals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait, do not spin or stop.
                    tracing::warn!("SQL endpoint cannot accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let slot = match shared.access.limits().sql_connection() {
            Ok(slot) => Some(slot),
            Err(limit) => {
                if refusing.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= limit {
                    refusing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    // Beyond as many again as the limit: told in plain
                    // protocol without pgwire, within two seconds, or closed
                    // when even those are too many.
                    let quick = quick_refusals.clone();
                    if quick.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < QUICK_REFUSALS {
                        queries.spawn(async move {
                            refuse_quickly(socket, limit).await;
                            quick.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        });
                    } else {
                        quick.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    continue;
                }
                None
            }
        };
        let refused = slot.is_none().then(|| refusing.clone());
        let shared = shared.clone();
        queries.spawn(async move {
            let tls = shared.tls.clone();
            let handlers = connection::Connection::new(shared, slot);
            if let Err(e) = process_socket(socket, tls, handlers).await {
                tracing::warn!(client = %peer, "SQL connection ended: {e}");
            }
            if let Some(r) = refused {
                r.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
}

/// Clients refused by [`refuse_quickly`] at once; beyond them a connection
/// is closed without an answer.
const QUICK_REFUSALS: usize = 4096;

/// Tell a client the server is full, speaking just enough of the protocol:
/// decline TLS (an `SSLRequest` gets `N`), read the startup message, send
/// a FATAL 53300 error, close. Two seconds at most.
async fn refuse_quickly(mut socket: tokio::net::TcpStream, limit: usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SSL_REQUEST: u32 = 80_877_103;
    const GSS_REQUEST: u32 = 80_877_104;
    let talk = async {
        let mut head = [0u8; 8];
        socket.read_exact(&mut head).await?;
        let mut len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 8 && (code == SSL_REQUEST || code == GSS_REQUEST) {
            socket.write_all(b"N").await?;
            socket.read_exact(&mut head).await?;
            len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        }
        let mut rest = vec![0u8; len.saturating_sub(8).min(16 * 1024)];
        socket.read_exact(&mut rest).await?;
        let message = format!(
            "sorry, too many clients already (this server takes {limit} connections; 连接数已满)"
        );
        let mut fields = Vec::new();
        for (tag, value) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "53300"),
            (b'M', message.as_str()),
        ] {
            fields.push(tag);
            fields.extend_from_slice(value.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut reply = vec![b'E'];
        reply.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
        reply.extend_from_slice(&fields);
        socket.write_all(&reply).await?;
        socket.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), talk).await;
}
