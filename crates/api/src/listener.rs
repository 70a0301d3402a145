//! TCP listeners, plain or TLS (rustls with aws-lc-rs), serving an axum router with hyper.

use crate::common::{OverTls, RemoteAddr};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub require_client_cert: bool,
}

/// Default `http_read_header_timeout`: from the first byte of a request (or from accepting the
/// connection, for the first request; including the TLS handshake) to the end of its headers.
pub const DEFAULT_READ_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `http_idle_timeout`: how long a keep-alive connection may wait for its next request,
/// and how long a request in progress may go without a byte read or written.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `max_connections`: connections served at once by one listener; further clients wait
/// in the kernel's accept queue until a connection ends.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: String,
    pub tls: Option<TlsFiles>,
    /// Zero disables the timeout.
    pub read_header_timeout: Duration,
    /// Zero disables the timeout.
    pub idle_timeout: Duration,
    /// At least 1.
    pub max_connections: usize,
}

impl ListenerConfig {
    /// A listener on `address` with the default timeouts and connection cap.
    pub fn new(address: impl Into<String>, tls: Option<TlsFiles>) -> Self {
        ListenerConfig {
            address: address.into(),
            tls,
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    // the io error is the source (shown by `{:#}`), not repeated in the message
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS configuration error: {0}")]
    Tls(String),
}

fn tls_config(t: &TlsFiles) -> Result<rustls::ServerConfig, ListenerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .map_err(|e| ListenerError::Tls(format!("reading {}: {e}", t.cert_file.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ListenerError::Tls(format!("parsing {}: {e}", t.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ListenerError::Tls(format!(
            "no certificate in {}",
            t.cert_file.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| ListenerError::Tls(format!("reading key {}: {e}", t.key_file.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenerError::Tls(e.to_string()))?;
    let builder = match &t.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| ListenerError::Tls(format!("reading {}: {e}", ca.display())))?
            {
                let c = c.map_err(|e| ListenerError::Tls(e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| ListenerError::Tls(e.to_string()))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if t.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                v.build().map_err(|e| ListenerError::Tls(e.to_string()))?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| ListenerError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A bound listener, ready to serve.
pub struct Bound {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    pub local_addr: SocketAddr,
}

/// The per-listener connection limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    read_header_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    max_connections: usize,
}

/// Bind the address and load TLS material (errors surface before the server reports ready).
pub async fn bind(cfg: &ListenerConfig) -> Result<Bound, ListenerError> {
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(t)?))),
        None => None,
    };
    let listener = TcpListener::bind(&cfg.address)
        .await
        .map_err(|source| ListenerError::Bind {
            addr: cfg.address.clone(),
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ListenerError::Bind {
            addr: cfg.address.clone(),
            source,
        })?;
    let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
    Ok(Bound {
        listener,
        tls,
        limits: Limits {
            read_header_timeout: nonzero(cfg.read_header_timeout),
            idle_timeout: nonzero(cfg.idle_timeout),
            max_connections: cfg.max_connections.clamp(1, MAX_PERMITS),
        },
        local_addr,
    })
}

/// The largest connection cap (tokio's semaphores take at most `u32` permits at once).
const MAX_PERMITS: usize = u32::MAX as usize >> 3;

/// How long `serve` waits, after shutdown was asked for, for requests in progress to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accept errors are logged at most once per this interval (with a count of the ones dropped).
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// Serve `app` on a bound listener until `shutdown` turns true; then idle connections are closed
/// at once and requests in progress get [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(bound: Bound, app: axum::Router, shutdown: watch::Receiver<bool>) {
    let limits = bound.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut accept_errors = AcceptErrors::default();
    let mut stop = std::pin::pin!(shutdown_signal(shutdown.clone()));
    loop {
        // wait for a free connection slot before accepting: when full, clients queue in the
        // kernel's backlog instead of costing a file descriptor each
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let accepted = tokio::select! {
            r = bound.listener.accept() => r,
            _ = &mut stop => break,
        };
        let (stream, peer) = match accepted {
            Ok(x) => {
                accept_errors.reset();
                x
            }
            Err(e) => {
                drop(permit);
                if let Some(pause) = accept_errors.record(&e) {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {},
                        _ = &mut stop => break,
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = bound.tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, tls, app, limits, shutdown).await;
            drop(permit);
        });
    }
    // every connection holds a permit: they are all gone once every permit can be taken
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still busy after the grace period are dropped");
    }
}

/// Resolves once shutdown is asked for (or the sender is gone).
async fn shutdown_signal(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Back-off and log rate limiting for `accept` errors.
#[derive(Default)]
struct AcceptErrors {
    backoff: Option<Duration>,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn reset(&mut self) {
        self.backoff = None;
    }

    /// Log (rate-limited) and return how long to pause before accepting again.
    fn record(&mut self, e: &std::io::Error) -> Option<Duration> {
        use std::io::ErrorKind;
        // a connection that died in the queue says nothing about the server: accept the next
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            tracing::debug!(error = %e, "accept failed");
            return None;
        }
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_ERROR_LOG_INTERVAL)
        {
            tracing::warn!(
                error = %e,
                suppressed = self.suppressed,
                "accept failed; backing off (repeats of this message are suppressed for 5s)"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        // out of file descriptors (or memory): nothing gets better by retrying at once
        let pause = self.backoff.map_or(Duration::from_millis(10), |b| {
            (b * 2).min(Duration::from_secs(1))
        });
        self.backoff = Some(pause);
        Some(pause)
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
) {
    let clock = Arc::new(ConnClock::new());
    match tls {
        Some(acceptor) => {
            // the handshake counts against the header timeout of the first request, and is
            // abandoned on shutdown
            let handshake = async {
                match limits.read_header_timeout {
                    Some(t) => tokio::time::timeout(t, acceptor.accept(stream)).await.ok(),
                    None => Some(acceptor.accept(stream).await),
                }
            };
            let stream = tokio::select! {
                r = handshake => r,
                _ = shutdown_signal(shutdown.clone()) => return,
            };
            match stream {
                Some(Ok(s)) => drive(s, peer, true, app, limits, clock, shutdown).await,
                Some(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                None => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
        None => drive(stream, peer, false, app, limits, clock, shutdown).await,
    }
}

/// Run hyper on one connection, closing it when a timeout expires or on shutdown.
async fn drive<S>(
    stream: S,
    peer: SocketAddr,
    over_tls: bool,
    app: axum::Router,
    limits: Limits,
    clock: Arc<ConnClock>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_clock = clock.clone();
    let svc = app.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(RemoteAddr(peer));
        if over_tls {
            req.extensions_mut().insert(OverTls);
        }
        req.map(axum::body::Body::new)
    });
    let svc = TowerToHyperService::new(svc);
    let svc = hyper::service::service_fn(move |req| {
        let busy = svc_clock.request_started();
        let fut = hyper::service::Service::call(&svc, req);
        async move {
            let r = fut.await;
            drop(busy);
            r
        }
    });
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    // hyper's own header timeout would also bound keep-alive idle time; the watchdog below
    // enforces both timeouts instead
    builder.http1().header_read_timeout(None);
    let io = TokioIo::new(Tracked {
        inner: stream,
        clock: clock.clone(),
    });
    let conn = builder.serve_connection(io, svc);
    let mut conn = std::pin::pin!(conn);
    let mut stop = std::pin::pin!(shutdown_signal(shutdown));
    let mut closing = false;
    // one timer for the connection's life, moved only when its deadline changes
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(far_future()));
    loop {
        let (deadline, expiry) = clock.deadline(&limits);
        if expiry.is_some() && sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        if let Some(expiry) = expiry.filter(|_| deadline <= Instant::now()) {
            match expiry {
                Expiry::Idle => tracing::trace!(%peer, "closing idle connection"),
                Expiry::HeaderRead => {
                    tracing::debug!(%peer, "closing connection: request headers too slow")
                }
                Expiry::Stalled => tracing::debug!(%peer, "closing connection: no progress"),
            }
            // dropping the connection closes it
            return;
        }
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection error");
                }
                return;
            }
            // look again: the clock may have moved on since the deadline was computed
            _ = sleep.as_mut(), if expiry.is_some() => {}
            _ = clock.changed.notified() => {}
            _ = &mut stop, if !closing => {
                // between requests (or still reading one's headers) there is nothing to finish
                if !clock.is_busy() {
                    return;
                }
                // let the request in progress finish, then close
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Which timeout a connection's deadline belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// Waiting for (the rest of) a request's headers.
    HeaderRead,
    /// A keep-alive connection waiting for its next request.
    Idle,
    /// A request in progress with no byte read or written.
    Stalled,
}

/// What a connection is doing, for its timeouts: fed by the I/O wrapper (bytes moved) and the
/// service wrapper (requests in progress), read by the connection's watchdog.
///
/// hyper's own `header_read_timeout` starts when the previous response ends, so it would bound
/// keep-alive idle time too; this clock tells the two apart, as Go's (and Vault's) server does.
struct ConnClock {
    state: Mutex<ClockState>,
    /// Signalled when the phase changes so that the watchdog's deadline moves earlier (a new
    /// request's head starts arriving on an idle connection); later deadlines are picked up
    /// lazily when the current one fires.
    changed: Notify,
}

struct ClockState {
    phase: Phase,
    last_io: Instant,
}

#[derive(Clone, Copy)]
enum Phase {
    /// Reading a request head that started arriving (or the connection was accepted) then.
    Head(Instant),
    /// `n` requests being handled.
    Busy(usize),
    /// Idle since then, between requests.
    Idle(Instant),
}

impl ConnClock {
    fn new() -> Self {
        let now = Instant::now();
        ConnClock {
            state: Mutex::new(ClockState {
                // the first request's header timeout runs from accept
                phase: Phase::Head(now),
                last_io: now,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bytes_read(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.last_io = now;
        if let Phase::Idle(_) = s.phase {
            s.phase = Phase::Head(now);
            drop(s);
            self.changed.notify_one();
        }
    }

    fn is_busy(&self) -> bool {
        matches!(self.lock().phase, Phase::Busy(_))
    }

    fn bytes_written(&self) {
        self.lock().last_io = Instant::now();
    }

    fn request_started(self: &Arc<Self>) -> BusyGuard {
        let mut s = self.lock();
        s.phase = match s.phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
        s.last_io = Instant::now();
        drop(s);
        // the busy deadline is later than the header deadline the watchdog sleeps on: it
        // recomputes when that fires, no need to wake it now
        BusyGuard(self.clone())
    }

    fn request_finished(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.last_io = now;
        s.phase = match s.phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(now),
        };
        // the idle deadline is no earlier than the busy one the watchdog sleeps on (lazy, as above)
    }

    /// When the current phase's timeout expires, and which one it is (`None`: no timeout).
    fn deadline(&self, limits: &Limits) -> (Instant, Option<Expiry>) {
        let s = self.lock();
        let (since, timeout, expiry) = match s.phase {
            Phase::Head(t) => (t, limits.read_header_timeout, Expiry::HeaderRead),
            Phase::Idle(t) => (t, limits.idle_timeout, Expiry::Idle),
            Phase::Busy(_) => (s.last_io, limits.idle_timeout, Expiry::Stalled),
        };
        match timeout {
            Some(d) => (since + d, Some(expiry)),
            None => (far_future(), None),
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// Marks a request in progress until dropped (also when hyper drops the request's future).
struct BusyGuard(Arc<ConnClock>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A connection's byte stream, reporting reads and writes to its [`ConnClock`].
struct Tracked<S> {
    inner: S,
    clock: Arc<ConnClock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.bytes_read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.bytes_written();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.bytes_written();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
