//! Starting, watching and stopping `coffer server` processes, and the few Vault API calls the
//! scenarios need to set one up. Every process is owned by a [`Coffer`] guard that kills it when
//! dropped (also on error, panic unwinding or Ctrl-C).

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use serde_json::{json, Value};

use crate::load::{snippet, Body, Conn};

/// A loopback port that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Memory of a process, from /proc/<pid>/status.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Mem {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

pub fn proc_mem(pid: u32) -> Result<Mem> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Ok(Mem {
        rss_kib: field("VmRSS:").ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))?,
        hwm_kib: field("VmHWM:").ok_or_else(|| anyhow!("no VmHWM for pid {pid}"))?,
    })
}

/// A running `coffer server`; killed on drop.
pub struct Coffer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub pid: u32,
    pub log: PathBuf,
    /// Just before the process was spawned.
    pub spawned_at: Instant,
}

impl Drop for Coffer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Coffer {
    fn spawn(bin: &Path, args: &[String], addr: SocketAddr, log: PathBuf) -> Result<Coffer> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        // temporary files (a dev server's TLS directory) go to the run's directory, removed with
        // it even when the server is killed
        let tmp = log.parent().unwrap_or(Path::new("."));
        let spawned_at = Instant::now();
        let child = Command::new(bin)
            .args(args)
            .env("TMPDIR", tmp)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Coffer {
            pid: child.id(),
            child: Some(child),
            addr,
            log,
            spawned_at,
        })
    }

    /// `coffer server -dev` with the given root token, in-memory storage.
    pub async fn start_dev(bin: &Path, dir: &Path, root_token: &str) -> Result<Coffer> {
        let mut last_err = None;
        for attempt in 0..3 {
            let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
            let args = vec![
                "server".to_string(),
                "-dev".to_string(),
                format!("-dev-root-token-id={root_token}"),
                format!("-dev-listen-address={addr}"),
                // the dev HTTPS listener on a port of the kernel's choosing, never 8443
                "-dev-tls-listen-address=127.0.0.1:0".to_string(),
            ];
            let log = dir.join(format!("coffer-dev-{attempt}.log"));
            let mut srv = Coffer::spawn(bin, &args, addr, log)?;
            match srv.wait_listening(Duration::from_secs(60)).await {
                Ok(_) => return Ok(srv),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("dev server did not start")))
    }

    /// `coffer server -config=<dir>/coffer-<tag>.hcl`, the configuration being `hcl(addr)` for a
    /// loopback address that was free a moment ago. Returns as soon as the process is spawned;
    /// see [`Coffer::wait_listening`].
    fn spawn_config(
        bin: &Path,
        dir: &Path,
        tag: &str,
        hcl: &dyn Fn(SocketAddr) -> String,
    ) -> Result<Coffer> {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let cfg = dir.join(format!("coffer-{tag}.hcl"));
        fs::write(&cfg, hcl(addr)).with_context(|| format!("writing {}", cfg.display()))?;
        let cfg_s = cfg
            .to_str()
            .ok_or_else(|| anyhow!("config path is not UTF-8"))?;
        let args = vec!["server".to_string(), format!("-config={cfg_s}")];
        Coffer::spawn(bin, &args, addr, dir.join(format!("coffer-{tag}.log")))
    }

    /// [`Coffer::spawn_config`] + [`Coffer::wait_listening`], retried on a fresh port if the
    /// process dies before it listens (the free port may have been taken meanwhile). Returns the
    /// time from the successful spawn to listening.
    pub async fn start_config(
        bin: &Path,
        dir: &Path,
        tag: &str,
        hcl: &dyn Fn(SocketAddr) -> String,
    ) -> Result<(Coffer, Duration)> {
        let mut last_err = None;
        for attempt in 0..3 {
            let mut srv = Coffer::spawn_config(bin, dir, &format!("{tag}-{attempt}"), hcl)?;
            match srv.wait_listening(Duration::from_secs(600)).await {
                Ok(t) => return Ok((srv, t)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("server did not start")))
    }

    /// [`Coffer::start_config`] with `storage "file"` in `data_dir` (sealed, maybe
    /// uninitialised).
    pub async fn start_file(
        bin: &Path,
        dir: &Path,
        data_dir: &Path,
        tag: &str,
    ) -> Result<(Coffer, Duration)> {
        let data = data_dir
            .to_str()
            .ok_or_else(|| anyhow!("data dir {} is not UTF-8", data_dir.display()))?;
        let hcl = |addr: SocketAddr| {
            format!(
                "storage \"file\" {{\n  path = {data:?}\n}}\n\nlistener \"tcp\" {{\n  address = \"{addr}\"\n  tls_disable = true\n}}\n\ndisable_mlock = true\n"
            )
        };
        Coffer::start_config(bin, dir, tag, &hcl).await
    }

    /// Poll `GET /v1/sys/seal-status` until it answers 200; returns the time since spawn.
    pub async fn wait_listening(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok((StatusCode::OK, _)) =
                call(self.addr, "GET", "/v1/sys/seal-status", None, None).await
            {
                return Ok(self.spawned_at.elapsed());
            }
            if Instant::now() >= deadline {
                bail!(
                    "coffer (pid {}) did not answer on {} within {timeout:?}{}",
                    self.pid,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The dev server's HTTPS listener and the CA certificate it is signed by, from the lines
    /// `CA certificate: <path>` and `==> Coffer server listening on https://<addr> ...` of its
    /// output (printed before it serves, so normally there once [`Coffer::wait_listening`] is).
    pub async fn dev_tls(&mut self) -> Result<(SocketAddr, PathBuf)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(found) = parse_dev_tls(&text) {
                return found;
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "coffer (pid {}) printed no HTTPS listener and CA certificate{}",
                    self.pid,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// An error if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(c) = self.child.as_mut() {
            if let Some(status) = c.try_wait()? {
                self.child = None;
                bail!(
                    "coffer (pid {}) exited unexpectedly: {status}{}",
                    self.pid,
                    self.log_tail()
                );
            }
        }
        Ok(())
    }

    pub fn mem(&self) -> Result<Mem> {
        proc_mem(self.pid)
    }

    /// Graceful stop: SIGTERM, then SIGKILL after 20 s. Returns how long it took.
    pub async fn stop(&mut self) -> Result<Duration> {
        let t0 = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Ok(Duration::ZERO);
        };
        let pid = libc::pid_t::try_from(self.pid)?;
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = t0 + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(t0.elapsed());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("coffer (pid {}) ignored SIGTERM for 20 s; killed", self.pid);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
            let _ = f.read_to_string(&mut s);
        }
        if s.trim().is_empty() {
            String::new()
        } else {
            format!("\n--- end of {} ---\n{}", self.log.display(), s.trim_end())
        }
    }

    /// Attach liveness and the log tail to an error from talking to this server.
    pub fn explain<T>(&mut self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => match self.check_alive() {
                Err(dead) => Err(e.context(format!("{dead:#}"))),
                Ok(()) => Err(e),
            },
        }
    }
}

/// `(HTTPS address, CA path)` from a dev server's output, once both lines are there.
fn parse_dev_tls(out: &str) -> Option<Result<(SocketAddr, PathBuf)>> {
    let mut ca = None;
    let mut addr = None;
    for line in out.lines() {
        if let Some(p) = line.strip_prefix("CA certificate: ") {
            ca = Some(PathBuf::from(p.trim_end()));
        } else if let Some(rest) = line.strip_prefix("==> Coffer server listening on https://") {
            let a = rest.split_whitespace().next().unwrap_or_default();
            addr = Some(
                a.parse::<SocketAddr>()
                    .with_context(|| format!("HTTPS listener address {a:?}")),
            );
        }
    }
    match (addr?, ca?) {
        (Ok(a), ca) => Some(Ok((a, ca))),
        (Err(e), _) => Some(Err(e)),
    }
}

/// Build a request to the server at `addr`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> Result<Request<Body>> {
    let method = Method::from_bytes(method.as_bytes())?;
    let uri: Uri = path.parse().with_context(|| format!("bad path {path}"))?;
    let mut req = Request::new(Body::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let h = req.headers_mut();
    h.insert(HOST, HeaderValue::from_str(&addr.to_string())?);
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(t) = token {
        h.insert(
            "x-vault-token",
            HeaderValue::from_str(t).context("token is not a valid header value")?,
        );
    }
    Ok(req)
}

/// One request on a fresh connection.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(StatusCode, Bytes)> {
    let body = match body {
        Some(v) => Bytes::from(serde_json::to_vec(v)?),
        None => Bytes::new(),
    };
    let req = request(addr, method, path, token, body)?;
    let mut conn = Conn::open(addr).await?;
    conn.send(req).await
}

/// One request that must succeed (2xx); returns the JSON answer (Null for an empty body).
pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value> {
    let (status, bytes) = call(addr, method, path, token, body).await?;
    if !status.is_success() {
        bail!("{method} {path}: HTTP {status}: {}", snippet(&bytes));
    }
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{method} {path}: answer is not JSON: {}", snippet(&bytes)))
}

pub fn str_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a str> {
    v.pointer(pointer).and_then(Value::as_str).ok_or_else(|| {
        anyhow!(
            "answer has no string at {pointer}: {}",
            snippet(v.to_string().as_bytes())
        )
    })
}

/// `PUT /v1/sys/init` with one key share; returns (unseal key, root token).
pub async fn init(addr: SocketAddr) -> Result<(String, String)> {
    let v = api(
        addr,
        "PUT",
        "/v1/sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await?;
    let key = str_at(&v, "/keys/0")?.to_string();
    let root = str_at(&v, "/root_token")?.to_string();
    Ok((key, root))
}

pub async fn unseal(addr: SocketAddr, key: &str) -> Result<()> {
    let v = api(
        addr,
        "PUT",
        "/v1/sys/unseal",
        None,
        Some(&json!({"key": key})),
    )
    .await?;
    if v.get("sealed").and_then(Value::as_bool) != Some(false) {
        bail!("still sealed after unseal: {v}");
    }
    Ok(())
}

pub async fn mount_kv2(addr: SocketAddr, token: &str) -> Result<()> {
    api(
        addr,
        "POST",
        "/v1/sys/mounts/secret",
        Some(token),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await?;
    Ok(())
}

/// Mount kv v2 at `secret/` and wait until a first write on it succeeds (a fresh mount may
/// have to settle).
pub async fn mount_kv2_ready(addr: SocketAddr, token: &str) -> Result<()> {
    mount_kv2(addr, token).await?;
    api_retry(
        addr,
        "PUT",
        "/v1/secret/data/probe",
        Some(token),
        Some(&json!({"data": {"v": "probe"}})),
        Duration::from_secs(10),
    )
    .await?;
    Ok(())
}

pub async fn enable_file_audit(addr: SocketAddr, token: &str, file: &Path) -> Result<()> {
    let path = file
        .to_str()
        .ok_or_else(|| anyhow!("audit path is not UTF-8"))?;
    api(
        addr,
        "PUT",
        "/v1/sys/audit/file",
        Some(token),
        Some(&json!({"type": "file", "options": {"file_path": path}})),
    )
    .await?;
    Ok(())
}

pub async fn put_policy(addr: SocketAddr, token: &str, name: &str, hcl: &str) -> Result<()> {
    api(
        addr,
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(token),
        Some(&json!({ "policy": hcl })),
    )
    .await?;
    Ok(())
}

pub async fn create_token(addr: SocketAddr, token: &str, policies: &[&str]) -> Result<String> {
    let v = api(
        addr,
        "POST",
        "/v1/auth/token/create",
        Some(token),
        Some(&json!({ "policies": policies, "no_default_policy": false })),
    )
    .await?;
    Ok(str_at(&v, "/auth/client_token")?.to_string())
}

/// Retry a 2xx-expected call for up to `timeout` (e.g. a mount that is still settling).
pub async fn api_retry(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        match api(addr, method, path, token, body).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_tls_lines() {
        let out = "==> Coffer server started in dev mode (in-memory storage, unsealed).\n\
            CA certificate: /tmp/x/coffer-dev-tls-1/ca.pem\n\
            Root Token: r\n\
            ==> Coffer server listening on http://127.0.0.1:4000 (version 0.1.0)\n";
        assert!(parse_dev_tls(out).is_none(), "no HTTPS line yet");
        let out =
            format!("{out}==> Coffer server listening on https://127.0.0.1:4001 (version 0.1.0)\n");
        let (addr, ca) = parse_dev_tls(&out).unwrap().unwrap();
        assert_eq!(addr, "127.0.0.1:4001".parse().unwrap());
        assert_eq!(ca, PathBuf::from("/tmp/x/coffer-dev-tls-1/ca.pem"));
    }
}
