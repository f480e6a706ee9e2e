//! One client connection: the login (`Startup`), then every statement in
//! the user's own view of the lake (`access`), judged by the read-only
//! gate (`Gate`), time-limited and audited (`ConnState::begin`).
//!
//! - A login is refused when the service is at its connection limit
//!   (53300), when TLS is required and missing, when the user name or the
//!   address is locked after repeated failures (and slowed before that);
//!   an unknown user goes through the same SCRAM exchange as a known one
//!   (see `Accounts`), a malformed SASL message closes the connection with an
//!   error, and every failed login is audited and logged.
//! - A statement is on record before it runs: its `started` row is
//!   committed first, and if that fails the statement is refused. Its
//!   outcome follows: `ok` with the rows sent, `error`, or `abandoned` when
//!   the client stops reading. Prepared statements are recorded with their
//!   bound values, ID numbers masked.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::arrow_pg::datatypes::df::{
    deserialize_parameters_with_server_types, encode_dataframe,
};
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{FieldInfo, Response};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionHandle, METADATA_USER, PgWireConnectionState,
    PgWireServerHandlers, Type,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::PasswordMessageFamily;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::channel::oneshot;
use futures::{Sink, StreamExt};

use super::Shared;
use crate::access::audit::{Entry, Outcome};
use crate::access::logins::Gate as LoginGate;
use crate::access::read_only::{Verdict, judge, scrub_plan_batches, sql_options};
use crate::access::{Principal, limits::Slot};

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

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

fn engine_error(e: datafusion::error::DataFusionError) -> PgWireError {
    PgWireError::ApiError(Box::new(e))
}

/// Judges every statement for one user; runs simple-protocol reads itself,
/// with the engine's read-only options and EXPLAIN scrubbed for non-admins.
/// Housekeeping passes on to the cursor, SET/SHOW and transaction hooks.
struct Gate {
    principal: Principal,
}

fn refuse(why: String) -> PgWireError {
    user_error("42501", why)
}

/// EXPLAIN output as `p` may see it.
async fn explained(
    ctx: &SessionContext,
    df: datafusion::dataframe::DataFrame,
    p: &Principal,
) -> PgWireResult<datafusion::dataframe::DataFrame> {
    if p.raw_values() {
        return Ok(df);
    }
    let batches = df.collect().await.map_err(engine_error)?;
    let batches = scrub_plan_batches(batches).map_err(|e| user_error("XX000", format!("{e:#}")))?;
    ctx.read_batches(batches).map_err(engine_error)
}

#[async_trait]
impl QueryHook for Gate {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        match judge(statement, &self.principal) {
            Verdict::Refused(why) => return Some(Err(refuse(why))),
            Verdict::Housekeeping => return None,
            Verdict::Read => {}
        }
        if matches!(
            statement,
            Statement::ShowVariable { .. } | Statement::ShowVariables { .. }
        ) {
            return None;
        }
        let run = async {
            let df = ctx
                .sql_with_options(&statement.to_string(), sql_options())
                .await
                .map_err(engine_error)?;
            let df = if matches!(statement, Statement::Explain { .. }) {
                explained(ctx, df, &self.principal).await?
            } else {
                df
            };
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            Ok(Response::Query(
                encode_dataframe(df, &Format::UnifiedText, Some(options)).await?,
            ))
        };
        Some(run.await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match judge(statement, &self.principal) {
            Verdict::Refused(why) => Some(Err(refuse(why))),
            _ => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        plan: &LogicalPlan,
        params: &datafusion::common::ParamValues,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Verdict::Refused(why) = judge(statement, &self.principal) {
            return Some(Err(refuse(why)));
        }
        if let Err(e) = sql_options().verify_plan(plan) {
            return Some(Err(refuse(format!("read-only access: {e}"))));
        }
        if !matches!(statement, Statement::Explain { .. }) || self.principal.raw_values() {
            return None;
        }
        let run = async {
            let plan = plan
                .clone()
                .replace_params_with_values(params)
                .map_err(engine_error)?;
            let df = ctx.execute_logical_plan(plan).await.map_err(engine_error)?;
            let df = explained(ctx, df, &self.principal).await?;
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            // Plans are text: its text and binary forms are the same bytes.
            Ok(Response::Query(
                encode_dataframe(df, &Format::UnifiedText, Some(options)).await?,
            ))
        };
        Some(run.await)
    }
}

/// The user's session, built at their first statement.
pub struct Session {
    service: Arc<DfSessionService>,
    principal: Principal,
}

/// How long a connection keeps one session before it builds another at its
/// next statement, so long-lived connections (BI tools) see new runs. The
/// tables themselves are shared by every connection (`access`).
const SESSION_TTL: Duration = Duration::from_secs(30);

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

/// A statement that is on record as started; its outcome is written by
/// [`Finisher::finish`], or as `abandoned` if the finisher is dropped first
/// (the client stopped reading).
struct Finisher {
    entry: Option<Entry>,
    started: Instant,
    audit: crate::access::audit::AuditLog,
}

impl Finisher {
    fn write(&mut self, rows: i64, outcome: Outcome, error: Option<String>) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        entry.at = chrono::Utc::now();
        entry.rows = rows;
        entry.outcome = outcome;
        entry.error = error;
        entry.millis = self.started.elapsed().as_millis() as i64;
        let audit = self.audit.clone();
        // The outcome row needs no waiting: the statement is on record.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = audit.record(entry).await {
                    tracing::error!("{e:#}");
                }
            });
        }
    }

    /// Write the outcome; a finisher writes once, so a later drop of what
    /// holds it writes nothing.
    fn finish(&mut self, rows: i64, error: Option<String>) {
        let outcome = if error.is_some() {
            Outcome::Error
        } else {
            Outcome::Ok
        };
        self.write(rows, outcome, error);
    }
}

/// Rows sent so far, shared with the finisher's drop.
struct Progress {
    finisher: Finisher,
    rows: Arc<AtomicUsize>,
}

impl Drop for Progress {
    fn drop(&mut self) {
        let n = self.rows.load(Ordering::SeqCst) as i64;
        self.finisher.write(
            n,
            Outcome::Abandoned,
            Some(format!(
                "the client stopped reading after {n} row(s) (结果未读完)"
            )),
        );
    }
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
                .filter(|(at, _)| at.elapsed() < SESSION_TTL)
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
            Arc::new(Gate {
                principal: principal.clone(),
            }),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        Ok(Session {
            service: Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks)),
            principal,
        })
    }

    fn entry<C: ClientInfo>(&self, client: &C, principal: &Principal, request: &str) -> Entry {
        Entry {
            at: chrono::Utc::now(),
            interface: "sql",
            user: principal.name.clone(),
            role: principal.role.name().into(),
            client: client.socket_addr().to_string(),
            request: request.trim().to_string(),
            code: 0,
            rows: 0,
            outcome: Outcome::Started,
            error: None,
            millis: 0,
        }
    }

    /// Put the statement on record before it runs. If the audit log cannot
    /// be written the statement is refused.
    async fn begin<C: ClientInfo>(
        &self,
        client: &C,
        principal: &Principal,
        request: &str,
    ) -> PgWireResult<Finisher> {
        let entry = self.entry(client, principal, request);
        if let Err(e) = self.shared.audit.record(entry.clone()).await {
            tracing::error!("statement refused, the audit log cannot be written: {e:#}");
            return Err(user_error(
                "58000",
                "the audit log cannot be written, so no statement may run (审计日志无法写入，已拒绝执行)".into(),
            ));
        }
        Ok(Finisher {
            entry: Some(entry),
            started: Instant::now(),
            audit: self.shared.audit.clone(),
        })
    }

    /// A refusal at Parse never reaches Execute: one row records it.
    fn refused_at_parse<C: ClientInfo>(
        &self,
        client: &C,
        principal: &Principal,
        sql: &str,
        e: &PgWireError,
    ) {
        let mut finisher = Finisher {
            entry: Some(self.entry(client, principal, sql)),
            started: Instant::now(),
            audit: self.shared.audit.clone(),
        };
        finisher.finish(0, Some(error_text(e)));
    }

    /// Attach the statement's outcome to its response: a result set is
    /// finished once its rows are all sent, fails, runs past the statement
    /// timeout or is cancelled, and is abandoned if the client stops
    /// reading; anything else is finished at once.
    fn audited(
        &self,
        started: Instant,
        result: PgWireResult<Response>,
        finisher: Finisher,
        handle: Option<Arc<ConnectionHandle>>,
    ) -> PgWireResult<Response> {
        match result {
            Ok(Response::Query(mut q)) => {
                let deadline = started + self.shared.statement_timeout;
                let rows = q.data_rows;
                let counted = Arc::new(AtomicUsize::new(0));
                let progress = Progress {
                    finisher,
                    rows: counted.clone(),
                };
                // Rows are computed as they are pulled: the time limit and a
                // client's cancel request (psql's Ctrl-C) both apply here,
                // and dropping the stream stops the query's tasks.
                let stream = futures::stream::unfold(
                    (Some(rows), Some(progress), handle, None),
                    move |(rows, progress, mut handle, mut cancel)| {
                        let counted = counted.clone();
                        async move {
                            let (mut rows, progress) = (rows?, progress?);
                            let n = || counted.load(Ordering::SeqCst) as i64;
                            let end = |mut progress: Progress, error: Option<String>| {
                                progress.finisher.finish(n(), error);
                            };
                            if let Some(h) = handle.take() {
                                cancel = Some(h.start_query().await);
                            }
                            let next = tokio::select! {
                                next = tokio::time::timeout_at(deadline.into(), rows.next()) => next,
                                _ = cancelled(&mut cancel) => {
                                    let e = user_error("57014", "canceling statement due to user request".into());
                                    end(progress, Some(error_text(&e)));
                                    return Some((Err(e), (None, None, None, None)));
                                }
                            };
                            match next {
                                Ok(Some(Ok(row))) => {
                                    counted.fetch_add(1, Ordering::SeqCst);
                                    Some((Ok(row), (Some(rows), Some(progress), None, cancel)))
                                }
                                Ok(Some(Err(e))) => {
                                    end(progress, Some(error_text(&e)));
                                    Some((Err(e), (None, None, None, None)))
                                }
                                Ok(None) => {
                                    end(progress, None);
                                    None
                                }
                                Err(_) => {
                                    let e = user_error(
                                        "57014",
                                        "canceling statement due to statement timeout".into(),
                                    );
                                    end(progress, Some(error_text(&e)));
                                    Some((Err(e), (None, None, None, None)))
                                }
                            }
                        }
                    },
                );
                q.data_rows = Box::pin(stream);
                Ok(Response::Query(q))
            }
            Ok(other) => {
                let mut finisher = finisher;
                finisher.finish(0, None);
                Ok(other)
            }
            Err(e) => {
                let mut finisher = finisher;
                finisher.finish(0, Some(error_text(&e)));
                Err(e)
            }
        }
    }

    /// Run `work` within the statement timeout.
    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        match tokio::time::timeout(self.shared.statement_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(user_error(
                "57014",
                "canceling statement due to statement timeout".into(),
            )),
        }
    }
}

/// An ID number among the bound values is masked in the audit log.
fn looks_like_id(value: &str) -> bool {
    let v = value.trim();
    (v.len() == 15 || v.len() == 18)
        && v.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || (i == 17 && (c == 'X' || c == 'x')))
}

/// The values bound to a prepared statement, as the audit log shows them.
fn bound_values(portal: &Portal<DfStatement>) -> Option<String> {
    if portal.parameters.is_empty() {
        return None;
    }
    let plan = portal.statement.statement.1.as_ref().map(|(_, p)| p)?;
    let types = plan.get_parameter_types().ok()?;
    let mut ordered: Vec<(usize, Option<DataType>)> = types
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix('$')?.parse().ok().map(|i: usize| (i, v)))
        .collect();
    ordered.sort_by_key(|(i, _)| *i);
    let inferred: Vec<Option<&DataType>> = ordered.iter().map(|(_, t)| t.as_ref()).collect();
    let wire: Vec<Option<Type>> = inferred
        .iter()
        .map(|t| t.and_then(|t| into_pg_type(t).ok()))
        .collect();
    let wire: Vec<Option<&Type>> = wire.iter().map(Option::as_ref).collect();
    let text: Vec<String> = match deserialize_parameters_with_server_types(portal, &inferred, &wire)
    {
        Ok(datafusion::common::ParamValues::List(values)) => {
            values.iter().map(|v| v.value.to_string()).collect()
        }
        // Values that do not decode are recorded as the bytes sent.
        _ => portal
            .parameters
            .iter()
            .map(|p| match p {
                Some(b) => String::from_utf8(b.to_vec()).unwrap_or_else(|_| hex::encode(b)),
                None => "NULL".into(),
            })
            .collect(),
    };
    let shown: Vec<String> = text
        .into_iter()
        .map(|v| {
            if looks_like_id(&v) {
                crate::identity::mask::id_number(v.trim())
            } else {
                v
            }
        })
        .collect();
    Some(format!("[{}]", shown.join(", ")))
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
        let finisher = self.state.begin(client, &session.principal, query).await?;
        let result = self
            .state
            .timed(SimpleQueryHandler::do_query(
                &*session.service,
                client,
                query,
            ))
            .await;
        match result {
            Ok(responses) => {
                // One statement text may hold several statements: the first
                // response carries the record, the rest finish with it.
                let mut finisher = Some(finisher);
                responses
                    .into_iter()
                    .map(|r| match finisher.take() {
                        Some(f) => self.state.audited(started, Ok(r), f, handle.clone()),
                        None => Ok(r),
                    })
                    .collect()
            }
            Err(e) => {
                let mut finisher = finisher;
                finisher.finish(0, Some(error_text(&e)));
                Err(e)
            }
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
        let sql = match bound_values(portal) {
            Some(values) => format!("{} -- parameters: {values}", portal.statement.statement.0),
            None => portal.statement.statement.0.clone(),
        };
        let finisher = self.state.begin(client, &session.principal, &sql).await?;
        let result = self
            .state
            .timed(ExtendedQueryHandler::do_query(
                &*session.service,
                client,
                portal,
                max_rows,
            ))
            .await;
        self.state.audited(started, result, finisher, handle)
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
        let session = self.state.session(client).await?;
        let parsed = session
            .service
            .query_parser()
            .parse_sql(client, sql, types)
            .await;
        if let Err(e) = &parsed {
            self.state
                .refused_at_parse(client, &session.principal, sql, e);
        }
        parsed
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

/// Whether a SASL initial response is well formed: a mechanism name ended
/// by a zero byte, then a length (-1, or the number of bytes that follow).
/// pgwire reads it without checking and panics on a short message.
fn well_formed_initial_response(body: &[u8]) -> bool {
    let Some(nul) = body.iter().position(|b| *b == 0) else {
        return false;
    };
    let rest = &body[nul + 1..];
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    len == -1 || (len >= 0 && len as usize == rest.len() - 4)
}

/// The login: the connection limit, TLS, throttling, the SCRAM exchange,
/// and an audit row for every failure.
pub struct Startup {
    inner: SASLAuthStartupHandler<DefaultServerParameterProvider>,
    shared: Arc<Shared>,
    /// None when the connection is above the service's limit.
    slot: Option<Slot>,
    limit: usize,
    password_messages: AtomicUsize,
}

impl Startup {
    /// Audit and log a refused login.
    async fn refused<C: ClientInfo>(&self, client: &C, reason: &str) {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_else(|| "-".into());
        let address = client.socket_addr();
        tracing::warn!(user = %user, client = %address, reason, "SQL login refused");
        let entry = Entry {
            at: chrono::Utc::now(),
            interface: "sql",
            user,
            role: "-".into(),
            client: address.to_string(),
            request: "login".into(),
            code: 0,
            rows: 0,
            outcome: Outcome::Error,
            error: Some(reason.to_string()),
            millis: 0,
        };
        if let Err(e) = self.shared.audit.record(entry).await {
            tracing::error!("cannot audit a refused login: {e:#}");
        }
    }

    fn user<C: ClientInfo>(client: &C) -> String {
        client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .unwrap_or_default()
    }
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
        let address: SocketAddr = client.socket_addr();
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if let Some(user) = startup.parameters.get("user") {
                client
                    .metadata_mut()
                    .insert(METADATA_USER.to_string(), user.clone());
            }
            if self.slot.is_none() {
                self.refused(client, "too many connections").await;
                return Err(fatal(
                    "53300",
                    format!(
                        "sorry, too many clients already (this server takes {} connections; 连接数已满)",
                        self.limit
                    ),
                ));
            }
            if self.shared.tls.is_some() && !client.is_secure() {
                self.refused(client, "plaintext connection to a TLS-only server")
                    .await;
                return Err(fatal(
                    "28000",
                    "this server accepts TLS connections only (use sslmode=require)".into(),
                ));
            }
            let user = Self::user(client);
            match self.shared.access.logins().check(&user, address.ip()) {
                LoginGate::Open => {}
                LoginGate::Delay(wait) => tokio::time::sleep(wait).await,
                LoginGate::Locked(left) => {
                    self.refused(client, "locked after repeated failed logins")
                        .await;
                    return Err(fatal(
                        "28000",
                        format!(
                            "too many failed logins: locked for {} more minute(s), or until an admin lifts it (登录失败次数过多，已锁定)",
                            left.as_secs().div_ceil(60)
                        ),
                    ));
                }
            }
        }
        if let PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::Raw(body)) =
            &message
            && self.password_messages.fetch_add(1, Ordering::SeqCst) == 0
            && !well_formed_initial_response(body)
        {
            self.refused(client, "malformed SASL initial response")
                .await;
            return Err(fatal(
                "08P01",
                "malformed SASL authentication message: expected SASLInitialResponse".into(),
            ));
        }
        match self.inner.on_startup(client, message).await {
            Ok(()) => {
                if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
                    self.shared
                        .access
                        .logins()
                        .succeeded(&Self::user(client), address.ip());
                }
                Ok(())
            }
            Err(e) => {
                let user = Self::user(client);
                let reason = match &e {
                    PgWireError::InvalidPassword(_)
                        if self.shared.users.principal(&user).is_none() =>
                    {
                        "unknown user".to_string()
                    }
                    PgWireError::InvalidPassword(_) => "wrong password".to_string(),
                    other => error_text(other),
                };
                self.shared.access.logins().failed(&user, address.ip());
                self.refused(client, &reason).await;
                // Whatever failed, the login ends here: an error that is
                // not fatal would leave the connection open unauthenticated.
                let mut info: ErrorInfo = e.into();
                info.severity = "FATAL".into();
                Err(PgWireError::UserError(Box::new(info)))
            }
        }
    }
}

/// The handlers of one connection.
pub struct Connection {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

/// The users file as pgwire's SCRAM password source.
#[derive(Debug)]
struct Accounts(crate::access::users::Users);

#[async_trait]
impl datafusion_postgres::pgwire::api::auth::AuthSource for Accounts {
    async fn get_password(
        &self,
        login: &datafusion_postgres::pgwire::api::auth::LoginInfo,
    ) -> datafusion_postgres::pgwire::error::PgWireResult<
        datafusion_postgres::pgwire::api::auth::Password,
    > {
        let (salt, salted) = self.0.scram_credentials(login.user().unwrap_or_default());
        Ok(datafusion_postgres::pgwire::api::auth::Password::new(
            Some(salt),
            salted,
        ))
    }
}

impl Connection {
    /// Handlers for one connection; `slot` is its place under the
    /// connection limit (None when the limit is reached: the login is
    /// refused with 53300).
    pub fn new(shared: Arc<Shared>, slot: Option<Slot>) -> Connection {
        let mut scram = datafusion_postgres::pgwire::api::auth::sasl::scram::ScramAuth::new(
            Arc::new(Accounts(shared.users.clone())),
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
                limit: shared.access.limits().sql_connections,
                shared: shared.clone(),
                slot,
                password_messages: AtomicUsize::new(0),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_initial_responses_are_checked_before_pgwire_reads_them() {
        let mut good = b"SCRAM-SHA-256\0".to_vec();
        good.extend_from_slice(&3i32.to_be_bytes());
        good.extend_from_slice(b"abc");
        assert!(well_formed_initial_response(&good));
        let mut none = b"SCRAM-SHA-256\0".to_vec();
        none.extend_from_slice(&(-1i32).to_be_bytes());
        assert!(well_formed_initial_response(&none));
        // A PasswordMessage where the initial response belongs.
        assert!(!well_formed_initial_response(b"hunter2\0"));
        assert!(!well_formed_initial_response(b"no terminator"));
        let mut long = b"SCRAM-SHA-256\0".to_vec();
        long.extend_from_slice(&1000i32.to_be_bytes());
        assert!(!well_formed_initial_response(&long));
        assert!(looks_like_id("52232219800315001X"));
        assert!(!looks_like_id("522322"));
    }
}
