//! Audit devices (file, socket, syslog) and their batching writer threads.

use super::entry::hmac_value;
use super::DeviceConfig;
use crate::error::{CoreError, Result};
use aws_lc_rs::hmac;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::PathBuf;
use tokio::sync::oneshot;

/// The kind of sink and its parsed options.
#[derive(Debug, Clone)]
pub enum DeviceKind {
    File {
        path: Option<PathBuf>,
        mode: u32,
    },
    Socket {
        address: String,
        socket_type: String,
    },
    Syslog {
        facility: u8,
        tag: String,
    },
}

fn opt<'a>(options: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(CoreError::invalid(format!(
            "audit option \"{key}\" must be a string"
        ))),
    }
}

fn opt_bool(options: &Map<String, Value>, key: &str, default: bool) -> bool {
    options
        .get(key)
        .and_then(crate::util::value_as_bool)
        .unwrap_or(default)
}

impl DeviceKind {
    pub fn parse(kind: &str, options: &Map<String, Value>) -> Result<DeviceKind> {
        const COMMON: [&str; 5] = [
            "hmac_accessor",
            "log_raw",
            "prefix",
            "elide_list_responses",
            "format",
        ];
        let allowed: &[&str] = match kind {
            "file" => &["file_path", "path", "mode"],
            "socket" => &["address", "socket_type", "write_timeout"],
            "syslog" => &["facility", "tag"],
            other => return Err(CoreError::invalid(format!("unknown backend type: {other}"))),
        };
        if let Some(k) = options
            .keys()
            .find(|k| !allowed.contains(&k.as_str()) && !COMMON.contains(&k.as_str()))
        {
            return Err(CoreError::invalid(format!(
                "unknown option \"{k}\" for audit type {kind}"
            )));
        }
        if let Some(f) = opt(options, "format")? {
            if f != "json" {
                return Err(CoreError::invalid(
                    "only the \"json\" audit format is supported",
                ));
            }
        }
        for k in ["hmac_accessor", "log_raw", "elide_list_responses"] {
            if let Some(v) = options.get(k) {
                if crate::util::value_as_bool(v).is_none() {
                    return Err(CoreError::invalid(format!(
                        "audit option \"{k}\" must be a boolean"
                    )));
                }
            }
        }
        match kind {
            "file" => {
                let p = opt(options, "file_path")?
                    .or(opt(options, "path")?)
                    .ok_or_else(|| CoreError::invalid("file_path is required"))?;
                let path = match p {
                    "stdout" | "-" => None,
                    other => Some(PathBuf::from(other)),
                };
                let mode = match opt(options, "mode")? {
                    None => 0o600,
                    Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                        .ok()
                        .filter(|m| *m <= 0o777)
                        .ok_or_else(|| {
                            CoreError::invalid("mode must be an octal file mode such as \"0600\"")
                        })?,
                };
                Ok(DeviceKind::File { path, mode })
            }
            "socket" => {
                let address = opt(options, "address")?
                    .ok_or_else(|| CoreError::invalid("address is required"))?
                    .to_string();
                let socket_type = opt(options, "socket_type")?.unwrap_or("tcp").to_string();
                if !matches!(socket_type.as_str(), "tcp" | "udp" | "unix") {
                    return Err(CoreError::invalid("socket_type must be tcp, udp or unix"));
                }
                Ok(DeviceKind::Socket {
                    address,
                    socket_type,
                })
            }
            _ => {
                let facility = match opt(options, "facility")?
                    .unwrap_or("AUTH")
                    .to_ascii_uppercase()
                    .as_str()
                {
                    "KERN" => 0,
                    "USER" => 1,
                    "MAIL" => 2,
                    "DAEMON" => 3,
                    "AUTH" => 4,
                    "SYSLOG" => 5,
                    "AUTHPRIV" => 10,
                    "LOCAL0" => 16,
                    "LOCAL1" => 17,
                    "LOCAL2" => 18,
                    "LOCAL3" => 19,
                    "LOCAL4" => 20,
                    "LOCAL5" => 21,
                    "LOCAL6" => 22,
                    "LOCAL7" => 23,
                    other => {
                        return Err(CoreError::invalid(format!(
                            "unknown syslog facility {other}"
                        )))
                    }
                };
                let tag = opt(options, "tag")?.unwrap_or("coffer").to_string();
                Ok(DeviceKind::Syslog { facility, tag })
            }
        }
    }
}

/// How long a socket device may take to connect or to accept a write before the entry counts
/// as not recorded (the request then fails closed instead of hanging).
const SOCKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn tcp_connect(address: &str) -> std::io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::other("address resolved to nothing");
    for addr in address.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT) {
            Ok(s) => {
                s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn unix_connect(address: &str) -> std::io::Result<std::os::unix::net::UnixStream> {
    let s = std::os::unix::net::UnixStream::connect(address)?;
    s.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    Ok(s)
}

/// The open destination of a device.
enum Sink {
    /// `file` is `None` after a failed reopen: writes then fail (fail-closed) and each write
    /// retries opening the path.
    File {
        path: PathBuf,
        mode: u32,
        file: Option<std::fs::File>,
    },
    Stdout,
    Tcp {
        address: String,
        stream: Option<std::net::TcpStream>,
    },
    Udp {
        socket: std::net::UdpSocket,
        address: String,
    },
    Unix {
        address: String,
        stream: Option<std::os::unix::net::UnixStream>,
    },
    Syslog {
        socket: std::os::unix::net::UnixDatagram,
        pri: u8,
        tag: String,
    },
}

fn open_file(path: &PathBuf, mode: u32) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            // directories created for the log are private (an existing one is left as is)
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
}

impl Sink {
    fn open(kind: &DeviceKind) -> std::io::Result<Sink> {
        Ok(match kind {
            DeviceKind::File { path: None, .. } => Sink::Stdout,
            DeviceKind::File {
                path: Some(p),
                mode,
            } => Sink::File {
                file: Some(open_file(p, *mode)?),
                path: p.clone(),
                mode: *mode,
            },
            DeviceKind::Socket {
                address,
                socket_type,
            } => match socket_type.as_str() {
                "udp" => {
                    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
                    Sink::Udp {
                        socket,
                        address: address.clone(),
                    }
                }
                "unix" => Sink::Unix {
                    stream: Some(unix_connect(address)?),
                    address: address.clone(),
                },
                _ => Sink::Tcp {
                    stream: Some(tcp_connect(address)?),
                    address: address.clone(),
                },
            },
            DeviceKind::Syslog { facility, tag } => {
                let socket = std::os::unix::net::UnixDatagram::unbound()?;
                socket.connect("/dev/log")?;
                Sink::Syslog {
                    socket,
                    pri: facility * 8 + 6,
                    tag: tag.clone(),
                }
            }
        })
    }

    /// Write whole lines; each line ends with '\n'.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::File { file, path, mode } => {
                if file.is_none() {
                    *file = Some(open_file(path, *mode)?);
                }
                match file {
                    Some(f) => {
                        f.write_all(buf)?;
                        f.flush()
                    }
                    None => Err(std::io::Error::other("audit file is not open")),
                }
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Sink::Tcp { address, stream } => {
                if let Some(s) = stream {
                    if s.write_all(buf).is_ok() {
                        return Ok(());
                    }
                }
                // reconnect once
                *stream = None;
                let mut s = tcp_connect(address)?;
                s.write_all(buf)?;
                *stream = Some(s);
                Ok(())
            }
            Sink::Unix { address, stream } => {
                if let Some(s) = stream {
                    if s.write_all(buf).is_ok() {
                        return Ok(());
                    }
                }
                *stream = None;
                let mut s = unix_connect(address)?;
                s.write_all(buf)?;
                *stream = Some(s);
                Ok(())
            }
            Sink::Udp { socket, address } => {
                for line in buf.split_inclusive(|b| *b == b'\n') {
                    socket.send_to(line, address.as_str())?;
                }
                Ok(())
            }
            Sink::Syslog { socket, pri, tag } => {
                for line in buf.split_inclusive(|b| *b == b'\n') {
                    let mut msg = format!("<{pri}>{tag}: ").into_bytes();
                    msg.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                    socket.send(&msg)?;
                }
                Ok(())
            }
        }
    }

    /// Whether a write may wait on something outside this machine's page cache.
    fn may_block(&self) -> bool {
        !matches!(self, Sink::File { .. } | Sink::Stdout)
    }

    /// Reopen a file sink at its path (after rotation); other sinks stay as they are.
    fn reopen(&mut self) -> std::io::Result<()> {
        if let Sink::File { path, mode, file } = self {
            // a failed reopen leaves the device failing rather than writing to the old file
            *file = None;
            *file = Some(open_file(path, *mode)?);
        }
        Ok(())
    }
}

#[derive(Clone, Default)]
pub(super) struct ChainState {
    pub seq: u64,
    pub last_hash: String,
}

/// The writing side of a device. Entries are chained and queued under `state`; the first
/// waiter that finds no write in progress writes everything queued with one call (group write),
/// and every waiter is answered once the write that holds its entry has finished.
struct WriteState {
    /// Head of the chain including queued entries.
    head: ChainState,
    /// Head of the chain as written to the sink.
    written: ChainState,
    queued: Vec<u8>,
    writing: bool,
    /// Bumped when a write fails: queued entries of the old epoch are dropped and fail.
    epoch: u64,
    last_error: String,
    /// For recent ended epochs: how far their entries got written.
    ended: std::collections::VecDeque<(u64, u64)>,
    /// Set when the server seals: no entry is accepted after the final position was saved.
    closed: bool,
    /// Entries waiting for the write in progress, in sequence order.
    waiters: Vec<Waiter>,
}

/// A task waiting for its entry to be written.
struct Waiter {
    seq: u64,
    tx: oneshot::Sender<()>,
}

/// One enabled audit device.
pub struct Device {
    cfg: DeviceConfig,
    salt: hmac::Key,
    chain: hmac::Key,
    prefix: String,
    sink: Mutex<Option<Sink>>,
    state: Mutex<WriteState>,
    broken: Option<String>,
    log_raw: bool,
    hmac_accessor: bool,
    elide_list: bool,
}

fn multi_threaded() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

fn hmac_key(hex_key: &str) -> hmac::Key {
    let bytes = zeroize::Zeroizing::new(hex::decode(hex_key).unwrap_or_default());
    hmac::Key::new(hmac::HMAC_SHA256, &bytes)
}

/// Recover the chain position from the last complete line of an existing log file.
fn recover_from_file(path: &PathBuf, chain: &hmac::Key) -> Option<ChainState> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    // only a regular file has a tail to recover (a device such as /dev/full would read forever)
    if !meta.is_file() {
        return None;
    }
    let start = meta.len().saturating_sub(1 << 20);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.take(1 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let json = &line[line.find('{')?..];
    let entry: Map<String, Value> = serde_json::from_str(json).ok()?;
    if !super::verify::entry_hash_ok(chain, &entry) {
        return None;
    }
    Some(ChainState {
        seq: entry.get("seq")?.as_u64()?,
        last_hash: entry.get("hash")?.as_str()?.to_string(),
    })
}

impl Device {
    fn new(
        cfg: DeviceConfig,
        sink: Option<Sink>,
        head: ChainState,
        broken: Option<String>,
    ) -> Device {
        Device {
            log_raw: opt_bool(&cfg.options, "log_raw", false),
            hmac_accessor: opt_bool(&cfg.options, "hmac_accessor", true),
            elide_list: opt_bool(&cfg.options, "elide_list_responses", false),
            salt: hmac_key(&cfg.salt),
            chain: hmac_key(&cfg.chain_key),
            prefix: cfg
                .options
                .get("prefix")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            cfg,
            sink: Mutex::new(sink),
            state: Mutex::new(WriteState {
                written: head.clone(),
                head,
                queued: Vec::with_capacity(64 * 1024),
                writing: false,
                epoch: 0,
                last_error: String::new(),
                ended: std::collections::VecDeque::new(),
                closed: false,
                waiters: Vec::new(),
            }),
            broken,
        }
    }

    pub(super) fn open(cfg: DeviceConfig) -> Result<Device> {
        let kind = DeviceKind::parse(&cfg.kind, &cfg.options)?;
        let chain = hmac_key(&cfg.chain_key);
        let mut head = ChainState {
            seq: cfg.seq,
            last_hash: cfg.last_hash.clone(),
        };
        if let DeviceKind::File { path: Some(p), .. } = &kind {
            if let Some(rec) = recover_from_file(p, &chain) {
                if rec.seq > head.seq {
                    head = rec;
                }
            }
        }
        let sink =
            Sink::open(&kind).map_err(|e| CoreError::invalid(format!("{}: {e}", cfg.path)))?;
        Ok(Device::new(cfg, Some(sink), head, None))
    }

    /// A device that could not be opened: every write fails (so fail-closed still holds).
    pub(super) fn broken(cfg: DeviceConfig, why: String) -> Device {
        let head = ChainState {
            seq: cfg.seq,
            last_hash: cfg.last_hash.clone(),
        };
        Device::new(cfg, None, head, Some(why))
    }

    pub fn path(&self) -> &str {
        &self.cfg.path
    }
    pub fn config(&self) -> &DeviceConfig {
        &self.cfg
    }
    pub(super) fn config_snapshot(&self) -> DeviceConfig {
        let st = self.state.lock().written.clone();
        let mut c = self.cfg.clone();
        c.seq = st.seq;
        c.last_hash = st.last_hash;
        c
    }
    /// The key that HMACs secret values in this device's entries.
    pub(super) fn salt(&self) -> &hmac::Key {
        &self.salt
    }
    pub fn hmac(&self, input: &str) -> String {
        hmac_value(&self.salt, input)
    }
    pub fn log_raw(&self) -> bool {
        self.log_raw
    }
    pub fn hmac_accessor(&self) -> bool {
        self.hmac_accessor
    }
    pub fn elide_list_responses(&self) -> bool {
        self.elide_list
    }
    pub(super) fn position(&self) -> (u64, String) {
        let st = self.state.lock();
        (st.written.seq, st.written.last_hash.clone())
    }

    pub(super) async fn probe(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(CoreError::invalid(why.clone())),
            None => Ok(()),
        }
    }

    /// Chain and queue an entry, and resolve once it has been written (or failed).
    /// `body` is the entry's JSON without `seq`, `prev_hash` and `hash`.
    pub(super) async fn submit(&self, body: Vec<u8>) -> std::result::Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        // the expensive part (building the body, hashing it) runs outside the lock
        let digest = super::verify::body_digest(&body);
        let (seq, epoch) = {
            let mut st = self.state.lock();
            if st.closed {
                return Err("audit device is closed (the server is sealing)".into());
            }
            let seq = st.head.seq + 1;
            let hash = super::verify::chain_hash(&self.chain, seq, &st.head.last_hash, &digest);
            let WriteState { queued, head, .. } = &mut *st;
            queued.extend_from_slice(self.prefix.as_bytes());
            super::verify::append_line(queued, &body, seq, &head.last_hash, &hash);
            st.head = ChainState {
                seq,
                last_hash: hash,
            };
            (seq, st.epoch)
        };
        self.wait_written(seq, epoch).await
    }

    /// Wait until `seq` is written, writing the queue ourselves when nobody else is.
    async fn wait_written(&self, seq: u64, epoch: u64) -> std::result::Result<(), String> {
        loop {
            let mut wake = None;
            let batch = {
                let mut st = self.state.lock();
                if st.epoch != epoch {
                    // a write failed since: our entry survived only if it was written before
                    let written_before = st
                        .ended
                        .iter()
                        .find(|(e, _)| *e == epoch)
                        .is_some_and(|(_, w)| seq <= *w);
                    return if written_before {
                        Ok(())
                    } else {
                        Err(st.last_error.clone())
                    };
                }
                if st.written.seq >= seq {
                    return Ok(());
                }
                if st.writing {
                    // sleep until the writer has written our entry (or hands us the pen)
                    let (tx, rx) = oneshot::channel();
                    st.waiters.push(Waiter { seq, tx });
                    wake = Some(rx);
                    None
                } else {
                    st.writing = true;
                    let upto = st.head.clone();
                    Some((std::mem::take(&mut st.queued), upto))
                }
            };
            match batch {
                Some((buf, upto)) => {
                    let result = match &mut *self.sink.lock() {
                        // a network sink may block for up to its timeout: let the runtime move
                        // other tasks off this worker meanwhile (file writes are not worth it)
                        Some(sink) if sink.may_block() && multi_threaded() => {
                            tokio::task::block_in_place(|| sink.write(&buf))
                        }
                        Some(sink) => sink.write(&buf),
                        None => Err(std::io::Error::other("audit device is not open")),
                    };
                    let failed = result.is_err();
                    let mut st = self.state.lock();
                    st.writing = false;
                    match result {
                        Ok(()) => st.written = upto,
                        Err(e) => {
                            // drop everything chained on top of the failed batch too, and go on
                            // from the last entry that was written
                            let ended = (st.epoch, st.written.seq);
                            st.ended.push_back(ended);
                            if st.ended.len() > 64 {
                                st.ended.pop_front();
                            }
                            st.epoch += 1;
                            st.last_error = format!("audit write failed: {e}");
                            st.queued.clear();
                            st.head = st.written.clone();
                        }
                    }
                    // keep the allocation for the next batch
                    if st.queued.is_empty() && st.queued.capacity() < buf.capacity() {
                        let mut buf = buf;
                        buf.clear();
                        st.queued = buf;
                    }
                    // wake exactly the waiters whose entries are now settled, and one more
                    // (if any) to write the next batch: no herd of needless wake-ups
                    let settled = st.written.seq;
                    let mut still = std::collections::VecDeque::with_capacity(st.waiters.len());
                    for w in st.waiters.drain(..) {
                        if failed || w.seq <= settled {
                            let _ = w.tx.send(());
                        } else {
                            still.push_back(w);
                        }
                    }
                    // the first waiter still alive takes over (a cancelled request's waiter
                    // is skipped, so the queue never waits for a writer that is gone)
                    while let Some(w) = still.pop_front() {
                        if w.tx.send(()).is_ok() {
                            break;
                        }
                    }
                    st.waiters = still.into();
                    drop(st);
                }
                None => {
                    if let Some(rx) = wake {
                        // woken, or the sender is gone: either way look again
                        let _ = rx.await;
                    }
                }
            }
        }
    }

    /// Reopen a file device's path (SIGHUP, log rotation) after writing what is queued.
    pub(super) async fn reopen(&self) {
        self.flush().await;
        if let Some(sink) = &mut *self.sink.lock() {
            if let Err(e) = sink.reopen() {
                tracing::error!(error = %e, "audit device failed to reopen its file");
            }
        }
    }

    /// Accept no more entries, then write everything queued (before the position is saved).
    pub(super) async fn close(&self) {
        self.state.lock().closed = true;
        self.flush().await;
    }

    /// Write everything queued so far.
    pub(super) async fn flush(&self) {
        let (seq, epoch) = {
            let st = self.state.lock();
            (st.head.seq, st.epoch)
        };
        let _ = self.wait_written(seq, epoch).await;
    }
}
