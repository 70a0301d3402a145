//! The load engine: N keep-alive HTTP/1.1 connections (plain or TLS) to one loopback address,
//! each driven by its own task sending one request at a time (closed loop), or on a fixed
//! schedule (open loop, `rate`). Every run is bounded by a duration and/or a request count and
//! by a hard time cap.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_rustls::TlsConnector;

pub type Body = Full<Bytes>;
/// Builds request number `seq` (unique across all connections of one run).
pub type MakeReq = Arc<dyn Fn(u64) -> Result<Request<Body>> + Send + Sync>;

/// One request may take at most this long; a server that stops answering is an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS client setup: trusts only the given CA and checks the server's certificate for one name.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Trust the PEM certificate(s) in `ca_file` (nothing else); the server's certificate must
    /// be valid for `name` (a DNS name, or an IP address as an IP SAN).
    pub fn new(ca_file: &Path, name: &str) -> Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca_file)
            .with_context(|| format!("reading {}", ca_file.display()))?
        {
            let c = c.with_context(|| format!("parsing {}", ca_file.display()))?;
            roots
                .add(c)
                .with_context(|| format!("CA certificate in {}", ca_file.display()))?;
        }
        if roots.is_empty() {
            bail!("no certificate in {}", ca_file.display());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| anyhow!("bad TLS server name {name:?}: {e}"))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(cfg)),
            name,
        })
    }
}

/// Where the load goes: a loopback address, over plain TCP or TLS.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: Option<Tls>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target { addr, tls: None }
    }
}

/// HTTP/1.1 over `io`; the connection is driven by its own task.
async fn handshake<T>(io: T, addr: SocketAddr) -> Result<SendRequest<Body>>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .with_context(|| format!("HTTP handshake with {addr}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One keep-alive HTTP/1.1 client connection (TLS is set up once, when it is opened).
pub struct Conn {
    target: Target,
    sender: SendRequest<Body>,
    pub reconnects: u64,
}

impl Conn {
    pub async fn open(target: impl Into<Target>) -> Result<Conn> {
        let target = target.into();
        let addr = target.addr;
        if !addr.ip().is_loopback() {
            bail!("refusing to send load to non-loopback address {addr}");
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let sender = match &target.tls {
            None => handshake(stream, addr).await?,
            Some(tls) => {
                let tls_stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tls.connector.connect(tls.name.clone(), stream),
                )
                .await
                .map_err(|_| anyhow!("TLS handshake with {addr} timed out"))?
                .with_context(|| format!("TLS handshake with {addr}"))?;
                handshake(tls_stream, addr).await?
            }
        };
        Ok(Conn {
            target,
            sender,
            reconnects: 0,
        })
    }

    /// Send one request and read the whole answer (status, body).
    pub async fn send(&mut self, req: Request<Body>) -> Result<(StatusCode, Bytes)> {
        if self.sender.is_closed() {
            let fresh = Conn::open(self.target.clone()).await?;
            self.sender = fresh.sender;
            self.reconnects += 1;
        }
        let what = format!("{} {}", req.method(), req.uri());
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Err(_) => bail!("{what}: no answer within {REQUEST_TIMEOUT:?}"),
            Ok(Err(e)) => Err(anyhow!(e).context(what)),
            Ok(Ok(r)) => Ok(r),
        }
    }
}

/// How a run is bounded and paced.
#[derive(Clone, Debug)]
pub struct Load {
    pub connections: usize,
    /// Measured time (after the warm-up).
    pub duration: Option<Duration>,
    /// Total number of requests (warm-up included).
    pub requests: Option<u64>,
    /// Total target rate in requests/s (open loop); `None` = as fast as possible.
    pub rate: Option<f64>,
    /// Requests sent before this much time has passed are not recorded.
    pub warmup: Duration,
    /// Hard limit: the run fails if it is not done by then.
    pub time_cap: Duration,
}

/// Raw outcome of one run.
pub struct Run {
    /// Latencies of the recorded requests, in nanoseconds.
    pub lat_ns: Vec<u64>,
    /// Measured window: end of warm-up to the last answer.
    pub elapsed: Duration,
    /// Size of the last response body.
    pub resp_bytes: usize,
    pub reconnects: u64,
}

struct Shared {
    make: MakeReq,
    seq: AtomicU64,
    stop: AtomicBool,
    start: Instant,
    record_from: Instant,
    end: Option<Instant>,
    cap: Instant,
    requests: Option<u64>,
    /// Per-connection interval between sends (open loop).
    interval: Option<Duration>,
    connections: usize,
}

struct WorkerOut {
    lat_ns: Vec<u64>,
    last: Instant,
    resp_bytes: usize,
    reconnects: u64,
}

/// Run `make`'s requests against `target` as `load` says (every connection is opened, and its
/// TLS handshake done, before the run starts). Any non-2xx answer, transport error or timeout
/// stops the whole run and is returned as the error.
pub async fn run(target: impl Into<Target>, load: &Load, make: MakeReq) -> Result<Run> {
    let target = target.into();
    if load.connections == 0 {
        bail!("need at least one connection");
    }
    if load.duration.is_none() && load.requests.is_none() {
        bail!("a run needs a duration or a request count");
    }
    let mut conns = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        conns.push(Conn::open(target.clone()).await?);
    }
    let start = Instant::now() + Duration::from_millis(5);
    let record_from = start + load.warmup;
    let interval = match load.rate {
        Some(r) if r > 0.0 => Some(Duration::from_secs_f64(load.connections as f64 / r)),
        Some(r) => bail!("invalid rate {r}"),
        None => None,
    };
    let shared = Arc::new(Shared {
        make,
        seq: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        start,
        record_from,
        end: load.duration.map(|d| record_from + d),
        cap: start + load.time_cap,
        requests: load.requests,
        interval,
        connections: load.connections,
    });
    let mut set = JoinSet::new();
    for (w, conn) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        set.spawn(async move {
            let r = worker(w, conn, &shared).await;
            if r.is_err() {
                shared.stop.store(true, Ordering::Relaxed);
            }
            r
        });
    }
    let mut outs = Vec::with_capacity(load.connections);
    let mut first_err: Option<anyhow::Error> = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(o)) => outs.push(o),
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(anyhow!("load task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let last = outs.iter().map(|o| o.last).max().unwrap_or(record_from);
    let elapsed = last.saturating_duration_since(record_from);
    let resp_bytes = outs.iter().map(|o| o.resp_bytes).max().unwrap_or(0);
    let reconnects = outs.iter().map(|o| o.reconnects).sum();
    let total: usize = outs.iter().map(|o| o.lat_ns.len()).sum();
    let mut lat_ns = Vec::with_capacity(total);
    for o in outs {
        lat_ns.extend(o.lat_ns);
    }
    Ok(Run {
        lat_ns,
        elapsed,
        resp_bytes,
        reconnects,
    })
}

async fn worker(w: usize, mut conn: Conn, s: &Shared) -> Result<WorkerOut> {
    tokio::time::sleep_until(s.start.into()).await;
    let mut lat_ns = Vec::with_capacity(4096);
    let mut last = s.start;
    let mut resp_bytes = 0;
    // Open loop: spread the connections' schedules evenly over one interval.
    let mut next = s
        .interval
        .map(|iv| s.start + iv.mul_f64(w as f64 / s.connections as f64));
    loop {
        if s.stop.load(Ordering::Relaxed) {
            break;
        }
        let now = Instant::now();
        if s.end.is_some_and(|end| now >= end) {
            break;
        }
        if now >= s.cap {
            bail!(
                "run did not finish within its time cap of {:?}",
                s.cap - s.start
            );
        }
        if let Some(at) = next {
            if at > now {
                tokio::time::sleep_until(at.into()).await;
                if s.end.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
            }
        }
        let seq = s.seq.fetch_add(1, Ordering::Relaxed);
        if s.requests.is_some_and(|max| seq >= max) {
            break;
        }
        let req = (s.make)(seq)?;
        let what = format!("{} {}", req.method(), req.uri());
        let t0 = Instant::now();
        let (status, body) = conn.send(req).await?;
        let t1 = Instant::now();
        if !status.is_success() {
            bail!("{what}: HTTP {status}: {}", snippet(&body));
        }
        if t0 >= s.record_from {
            lat_ns.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        }
        resp_bytes = body.len();
        last = t1;
        if let (Some(at), Some(iv)) = (next.as_mut(), s.interval) {
            *at += iv;
        }
    }
    Ok(WorkerOut {
        lat_ns,
        last,
        resp_bytes,
        reconnects: conn.reconnects,
    })
}

/// A closed loop of arbitrary work: one task per element of `states` (e.g. a client connection
/// opened beforehand), each calling `step` with its state and the iteration's number (unique
/// across tasks) as soon as its previous call has finished, and getting the state back. Bounded,
/// warmed up and capped as [`run`] is (`load.connections` and `load.rate` are not used: the
/// number of states is the concurrency); each call may take at most [`REQUEST_TIMEOUT`]. The
/// first error stops the run and is returned. A latency is the time of one whole `step`.
pub async fn run_steps<S, F, Fut>(states: Vec<S>, load: &Load, step: F) -> Result<Run>
where
    S: Send + 'static,
    F: Fn(S, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<S>> + Send + 'static,
{
    if states.is_empty() {
        bail!("need at least one connection");
    }
    if load.rate.is_some() {
        bail!("run_steps is closed loop only");
    }
    if load.duration.is_none() && load.requests.is_none() {
        bail!("a run needs a duration or a request count");
    }
    let start = Instant::now() + Duration::from_millis(5);
    let record_from = start + load.warmup;
    let end = load.duration.map(|d| record_from + d);
    let cap = start + load.time_cap;
    let requests = load.requests;
    let seq = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let step = Arc::new(step);
    let mut set = JoinSet::new();
    for state in states {
        let (seq, stop, step) = (seq.clone(), stop.clone(), step.clone());
        set.spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            let mut state = Some(state);
            let mut lat_ns = Vec::with_capacity(1024);
            let mut last = start;
            let r = loop {
                if stop.load(Ordering::Relaxed) {
                    break Ok(());
                }
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    break Ok(());
                }
                if now >= cap {
                    break Err(anyhow!(
                        "run did not finish within its time cap of {:?}",
                        cap - start
                    ));
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                if requests.is_some_and(|max| n >= max) {
                    break Ok(());
                }
                let Some(st) = state.take() else {
                    break Ok(());
                };
                let t0 = Instant::now();
                let out = tokio::time::timeout(REQUEST_TIMEOUT, step(st, n)).await;
                let t1 = Instant::now();
                match out {
                    Err(_) => break Err(anyhow!("no answer within {REQUEST_TIMEOUT:?}")),
                    Ok(Err(e)) => break Err(e),
                    Ok(Ok(st)) => state = Some(st),
                }
                if t0 >= record_from {
                    lat_ns.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
                }
                last = t1;
            };
            if r.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            r.map(|()| (lat_ns, last))
        });
    }
    let mut lat_ns = Vec::new();
    let mut last = record_from;
    let mut first_err: Option<anyhow::Error> = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok((l, t))) => {
                lat_ns.extend(l);
                last = last.max(t);
            }
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_err.get_or_insert(anyhow!("load task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Run {
        lat_ns,
        elapsed: last.saturating_duration_since(record_from),
        resp_bytes: 0,
        reconnects: 0,
    })
}

/// The start of a response body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 300 {
        let cut: String = text.chars().take(300).collect();
        format!("{cut}...")
    } else {
        text.to_string()
    }
}

/// Throughput and latency of one run (or the medians of several).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub requests: u64,
    pub elapsed_s: f64,
    pub rps: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn from_latencies(mut lat_ns: Vec<u64>, elapsed: Duration) -> Summary {
        lat_ns.sort_unstable();
        let n = lat_ns.len();
        let pct = |q: f64| -> f64 {
            if n == 0 {
                return 0.0;
            }
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            lat_ns[rank - 1] as f64 / 1e6
        };
        let secs = elapsed.as_secs_f64();
        let mean = if n == 0 {
            0.0
        } else {
            lat_ns.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1e6
        };
        Summary {
            requests: n as u64,
            elapsed_s: secs,
            rps: if secs > 0.0 { n as f64 / secs } else { 0.0 },
            mean_ms: mean,
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: pct(1.0),
        }
    }

    pub fn from_run(run: Run) -> Summary {
        Summary::from_latencies(run.lat_ns, run.elapsed)
    }

    /// Field-wise median of several runs.
    pub fn median(runs: &[Summary]) -> Summary {
        fn med(mut v: Vec<f64>) -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        }
        let f = |g: fn(&Summary) -> f64| med(runs.iter().map(g).collect());
        Summary {
            requests: f(|s| s.requests as f64).round() as u64,
            elapsed_s: f(|s| s.elapsed_s),
            rps: f(|s| s.rps),
            mean_ms: f(|s| s.mean_ms),
            p50_ms: f(|s| s.p50_ms),
            p90_ms: f(|s| s.p90_ms),
            p99_ms: f(|s| s.p99_ms),
            max_ms: f(|s| s.max_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let lat: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        let s = Summary::from_latencies(lat, Duration::from_secs(2));
        assert_eq!(s.requests, 100);
        assert!((s.rps - 50.0).abs() < 1e-9);
        assert!((s.p50_ms - 50.0).abs() < 1e-9);
        assert!((s.p90_ms - 90.0).abs() < 1e-9);
        assert!((s.p99_ms - 99.0).abs() < 1e-9);
        assert!((s.max_ms - 100.0).abs() < 1e-9);
    }

    #[tokio::test]
    async fn steps_closed_loop() {
        let load = Load {
            connections: 3,
            duration: None,
            requests: Some(10),
            rate: None,
            warmup: Duration::ZERO,
            time_cap: Duration::from_secs(10),
        };
        let r = run_steps(vec![0u64; 3], &load, |n: u64, seq| async move {
            assert!(seq < 10);
            Ok(n + 1)
        })
        .await
        .unwrap();
        assert_eq!(r.lat_ns.len(), 10);
        let e = run_steps(vec![(); 2], &load, |(), seq| async move {
            if seq == 4 {
                bail!("step {seq} failed");
            }
            Ok(())
        })
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("step 4 failed"), "{e}");
    }

    #[test]
    fn medians() {
        let a = Summary {
            rps: 1.0,
            ..Default::default()
        };
        let b = Summary {
            rps: 5.0,
            ..Default::default()
        };
        let c = Summary {
            rps: 3.0,
            ..Default::default()
        };
        assert_eq!(Summary::median(&[a, b, c]).rps, 3.0);
    }
}
