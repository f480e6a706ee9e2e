//! One client connection: SCRAM login (and TLS when configured), then every
//! statement through datafusion-postgres in the user's own view of the lake
//! (`access::secure`), read-only checked, time-limited and audited.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, METADATA_USER, PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::channel::oneshot;
use futures::{Sink, StreamExt};

use super::Shared;
use crate::access::audit::Entry;
use crate::access::{Principal, read_only};

type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// An error as the audit log shows it: SQLSTATE and message.
fn error_text(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
        other => other.to_string(),
    }
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        code.into(),
        message,
    )))
}

/// Refuses every statement that is not a read (42501: insufficient
/// privilege). Session housekeeping clients send (SET, SHOW, BEGIN,
/// COMMIT, cursors) passes on to the built-in hooks.
struct ReadOnlyHook;

fn refusal(statement: &Statement) -> Option<PgWireError> {
    use Statement as S;
    // Session housekeeping that clients send on connect and around queries.
    let housekeeping = matches!(
        statement,
        S::Set(_)
            | S::ShowVariable { .. }
            | S::ShowVariables { .. }
            | S::StartTransaction { .. }
            | S::Commit { .. }
            | S::Rollback { .. }
            | S::Declare { .. }
            | S::Fetch { .. }
            | S::Close { .. }
            | S::Discard { .. }
            | S::Deallocate { .. }
    );
    let error = match read_only::check(&statement.to_string()) {
        _ if housekeeping => return None,
        Ok(_) => return None,
        Err(e) => e,
    };
    Some(user_error("42501", format!("{error:#}")))
}

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &datafusion::common::ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }
}

/// The user's session, built at their first statement.
pub struct Session {
    service: Arc<DfSessionService>,
    principal: Principal,
}

/// How long a connection keeps one snapshot of the lake before it reopens
/// the tables at its next statement, so long-lived connections (BI tools)
/// see new runs.
const SNAPSHOT_TTL: Duration = Duration::from_secs(30);

/// Resolves when the client asks to cancel the running statement; never
/// when no cancel can come (the handle was replaced or is missing).
async fn cancelled(rx: &mut Option<oneshot::Receiver<()>>) {
    if let Some(r) = rx {
        let fired = r.await.is_ok();
        *rx = None;
        if fired {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// The connection's cancel handle. pgwire listens for cancel requests only
/// while `do_query` runs; rows are computed later, as they are sent, so the
/// result stream takes the handle over on its first poll (after pgwire let
/// go of it) and listens from then on.
fn cancel_handle<C: ClientInfo>(client: &C) -> Option<Arc<ConnectionHandle>> {
    client
        .session_extensions()
        .get::<Arc<ConnectionHandle>>()
        .map(|h| Arc::clone(&*h))
}

/// What the query handlers of one connection share.
pub struct ConnState {
    shared: Arc<Shared>,
    session: std::sync::Mutex<Option<(Instant, Arc<Session>)>>,
}

impl ConnState {
    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|(_, session)| session.clone()))
    }

    async fn session<C: ClientInfo>(&self, client: &C) -> PgWireResult<Arc<Session>> {
        let fresh = self.session.lock().ok().and_then(|s| {
            s.as_ref()
                .filter(|(at, _)| at.elapsed() < SNAPSHOT_TTL)
                .map(|(_, session)| session.clone())
        });
        if let Some(session) = fresh {
            return Ok(session);
        }
        let session = Arc::new(self.open(client).await?);
        if let Ok(mut slot) = self.session.lock() {
            *slot = Some((Instant::now(), session.clone()));
        }
        Ok(session)
    }

    async fn open<C: ClientInfo>(&self, client: &C) -> PgWireResult<Session> {
        {
            {
                let name = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                let principal = self
                    .shared
                    .users
                    .principal(&name)
                    .ok_or_else(|| user_error("28000", format!("no user {name}")))?;
                let ctx = self
                    .shared
                    .access
                    .session(&principal, Some(self.shared.memory_limit_bytes))
                    .await
                    .map_err(|e| user_error("58000", format!("cannot open the lake: {e:#}")))?;
                setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider)
                    .map_err(|e| user_error("58000", format!("cannot set up pg_catalog: {e}")))?;
                let hooks: Vec<Arc<dyn QueryHook>> = vec![
                    Arc::new(ReadOnlyHook),
                    Arc::new(CursorStatementHook),
                    Arc::new(SetShowHook),
                    Arc::new(TransactionStatementHook),
                ];
                Ok(Session {
                    service: Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks)),
                    principal,
                })
            }
        }
    }

    /// Record one statement in the audit log (in the background; the
    /// writer commits in groups).
    fn record<C: ClientInfo>(
        &self,
        client: &C,
        principal: &Principal,
        sql: &str,
        started: Instant,
    ) -> impl Fn(i64, Option<String>) + Send + Sync + 'static {
        let entry = Entry {
            at: chrono::Utc::now(),
            interface: "sql",
            user: principal.name.clone(),
            role: principal.role.name().into(),
            client: client.socket_addr().to_string(),
            request: sql.trim().to_string(),
            code: 0,
            rows: 0,
            ok: true,
            error: None,
            millis: 0,
        };
        let audit = self.shared.audit.clone();
        move |rows: i64, error: Option<String>| {
            let mut entry = entry.clone();
            entry.rows = rows;
            entry.ok = error.is_none();
            entry.error = error;
            entry.millis = started.elapsed().as_millis() as i64;
            let audit = audit.clone();
            tokio::spawn(async move {
                if let Err(e) = audit.record(entry).await {
                    tracing::error!("{e:#}");
                }
            });
        }
    }

    /// Audit a statement's outcome; a result set is recorded once its rows
    /// are all sent (or it fails or runs past the statement timeout).
    fn audit<C: ClientInfo>(
        &self,
        client: &C,
        principal: &Principal,
        sql: &str,
        started: Instant,
        result: PgWireResult<Response>,
        handle: Option<Arc<ConnectionHandle>>,
    ) -> PgWireResult<Response> {
        let record = self.record(client, principal, sql, started);
        match result {
            Ok(Response::Query(mut q)) => {
                let deadline = started + self.shared.statement_timeout;
                let rows = q.data_rows;
                // Rows are computed as they are pulled: the time limit and a
                // client's cancel request (psql's Ctrl-C) both apply here,
                // and dropping the stream stops the query.
                // On an error, a timeout or a cancel the inner stream is
                // dropped at once, which stops the query's tasks.
                let stream = futures::stream::unfold(
                    (Some(rows), 0i64, Some(record), handle, None),
                    move |(rows, n, record, mut handle, mut cancel)| async move {
                        let (mut rows, record) = (rows?, record?);
                        if let Some(h) = handle.take() {
                            cancel = Some(h.start_query().await);
                        }
                        let next = tokio::select! {
                            next = tokio::time::timeout_at(deadline.into(), rows.next()) => next,
                            _ = cancelled(&mut cancel) => {
                                let e = user_error("57014", "canceling statement due to user request".into());
                                record(n, Some(error_text(&e)));
                                drop(rows);
                                return Some((Err(e), (None, n, None, None, None)));
                            }
                        };
                        match next {
                            Ok(Some(Ok(row))) => {
                                Some((Ok(row), (Some(rows), n + 1, Some(record), None, cancel)))
                            }
                            Ok(Some(Err(e))) => {
                                record(n, Some(error_text(&e)));
                                Some((Err(e), (None, n, None, None, None)))
                            }
                            Ok(None) => {
                                record(n, None);
                                None
                            }
                            Err(_) => {
                                let e = user_error(
                                    "57014",
                                    "canceling statement due to statement timeout".into(),
                                );
                                record(n, Some(error_text(&e)));
                                Some((Err(e), (None, n, None, None, None)))
                            }
                        }
                    },
                );
                q.data_rows = Box::pin(stream);
                Ok(Response::Query(q))
            }
            Ok(other) => {
                record(0, None);
                Ok(other)
            }
            Err(e) => {
                record(0, Some(error_text(&e)));
                Err(e)
            }
        }
    }
}

/// Simple and extended query handling for one connection.
pub struct Queries {
    state: Arc<ConnState>,
    parser: Arc<Parser>,
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Instant::now();
        let handle = cancel_handle(client);
        let session = self.state.session(client).await?;
        let result = SimpleQueryHandler::do_query(&*session.service, client, query).await;
        match result {
            Ok(responses) => responses
                .into_iter()
                .map(|r| {
                    self.state.audit(
                        client,
                        &session.principal,
                        query,
                        started,
                        Ok(r),
                        handle.clone(),
                    )
                })
                .collect(),
            Err(e) => self
                .state
                .audit(client, &session.principal, query, started, Err(e), None)
                .map(|r| vec![r]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = DfStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = Instant::now();
        let handle = cancel_handle(client);
        let session = self.state.session(client).await?;
        let result =
            ExtendedQueryHandler::do_query(&*session.service, client, portal, max_rows).await;
        let sql = portal.statement.statement.0.clone();
        self.state
            .audit(client, &session.principal, &sql, started, result, handle)
    }
}

/// Parses in the user's session (so plans see only the user's views).
pub struct Parser {
    state: Arc<ConnState>,
}

impl Parser {
    fn inner(&self) -> PgWireResult<Arc<datafusion_postgres::Parser>> {
        self.state
            .current()
            .map(|s| s.service.query_parser())
            .ok_or_else(|| user_error("08P01", "no session yet".into()))
    }
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = DfStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let started = Instant::now();
        let session = self.state.session(client).await?;
        let parsed = session
            .service
            .query_parser()
            .parse_sql(client, sql, types)
            .await;
        match parsed {
            Ok(statement) => Ok(statement),
            // A statement refused (or broken) at Parse never reaches Execute:
            // record it here.
            Err(e) => {
                self.state.record(client, &session.principal, sql, started)(
                    0,
                    Some(error_text(&e)),
                );
                Err(e)
            }
        }
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner()?.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&datafusion_postgres::pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner()?.get_result_schema(stmt, column_format)
    }
}

/// SCRAM login; with TLS configured, plaintext connections are refused
/// before any password exchange.
pub struct Startup {
    inner: SASLAuthStartupHandler<DefaultServerParameterProvider>,
    require_tls: bool,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.require_tls && !client.is_secure() {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "this server accepts TLS connections only (use sslmode=require)".into(),
            ))));
        }
        self.inner.on_startup(client, message).await
    }
}

/// The handlers of one connection.
pub struct Connection {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Connection {
    pub fn new(shared: Arc<Shared>) -> Connection {
        let mut scram = datafusion_postgres::pgwire::api::auth::sasl::scram::ScramAuth::new(
            Arc::new(shared.users.clone()),
        );
        scram.set_iterations(datafusion_postgres::pgwire::api::auth::sasl::scram::SCRAM_ITERATIONS);
        let inner =
            SASLAuthStartupHandler::new(Arc::new(DefaultServerParameterProvider::default()))
                .with_scram(scram)
                .with_connection_manager(shared.connections.clone());
        let state = Arc::new(ConnState {
            shared: shared.clone(),
            session: std::sync::Mutex::new(None),
        });
        Connection {
            startup: Arc::new(Startup {
                inner,
                require_tls: shared.tls.is_some(),
            }),
            queries: Arc::new(Queries {
                state: state.clone(),
                parser: Arc::new(Parser { state }),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(shared.connections.clone())),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}
