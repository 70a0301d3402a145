//! Test harness: starts the real `coffer` binary on a free port and talks to it over HTTP.

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ROOT: &str = "root-test-token";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A running server process; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub client: Client,
    pub token: String,
    pub output: Arc<Mutex<String>>,
    /// The server's TMPDIR (a dev server's TLS directory lands there), removed after the process
    /// is killed: a killed server cannot remove that directory itself.
    _tmp: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `coffer` with `args` and wait until it answers on `port` (plain HTTP).
pub fn spawn_with(args: &[String], port: u16, prepare: impl FnOnce(&mut Command)) -> Server {
    try_spawn(args, port, prepare).unwrap_or_else(|out| panic!("server did not start: {out}"))
}

/// Attempts at starting a server on a fresh port when the one picked was taken meanwhile
/// (another test's server or an outgoing connection got it between pick and bind).
const PORT_ATTEMPTS: usize = 3;

/// Start a server on a port from [`free_port`], built into its arguments by `args`; again on
/// another port when the first was taken meanwhile.
fn spawn_on_free_port(
    mut args: impl FnMut(u16) -> Vec<String>,
    mut prepare: impl FnMut(&mut Command),
) -> Server {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        match try_spawn(&args(port), port, &mut prepare) {
            Ok(s) => return s,
            Err(out) if out.contains("Address already in use") => last = out,
            Err(out) => panic!("server did not start: {out}"),
        }
    }
    panic!("server did not start ({PORT_ATTEMPTS} ports were taken): {last}")
}

/// [`spawn_with`], answering the server's output when it exits or does not answer in time.
fn try_spawn(
    args: &[String],
    port: u16,
    prepare: impl FnOnce(&mut Command),
) -> Result<Server, String> {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("TMPDIR", tmp.path());
    prepare(&mut cmd);
    let mut child = cmd.spawn().expect("spawn coffer");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&line);
                out.lock().unwrap().push('\n');
            }
        });
    }
    let mut server = Server {
        child,
        addr: format!("http://127.0.0.1:{port}"),
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        token: ROOT.to_string(),
        output,
        _tmp: tmp,
    };
    server.wait_listening()?;
    Ok(server)
}

/// `coffer server -dev` with a known root token.
pub fn dev() -> Server {
    dev_with(&[])
}

/// `coffer server -dev` with extra arguments.
pub fn dev_with(extra: &[&str]) -> Server {
    dev_prepared(extra, |_| {})
}

/// `coffer server -dev` with extra arguments and a hook to adjust the command before it is
/// spawned (environment). Unless `extra` moves it, the dev HTTPS listener takes a port of the
/// kernel's choosing, so that servers started in parallel do not compete for 8443.
pub fn dev_prepared(extra: &[&str], prepare: impl FnMut(&mut Command)) -> Server {
    let args = |port: u16| {
        let mut args = vec![
            "server".to_string(),
            "-dev".into(),
            format!("-dev-root-token-id={ROOT}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if !extra.iter().any(|a| {
            a.trim_start_matches('-')
                .starts_with("dev-tls-listen-address")
        }) {
            args.push("-dev-tls-listen-address=127.0.0.1:0".into());
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    spawn_on_free_port(args, prepare)
}

/// Write a config file for `storage` and start `coffer server -config`.
pub fn with_config(dir: &Path, storage_hcl: &str, extra_hcl: &str) -> Server {
    with_listener(dir, storage_hcl, "", extra_hcl, |_| {})
}

/// Like [`with_config`], with `listener_hcl` added to the (plain HTTP) listener block and a hook
/// to adjust the command before it is spawned (umask, resource limits).
pub fn with_listener(
    dir: &Path,
    storage_hcl: &str,
    listener_hcl: &str,
    extra_hcl: &str,
    prepare: impl FnMut(&mut Command),
) -> Server {
    let args = |port: u16| {
        let cfg = dir.join(format!("coffer-{port}.hcl"));
        std::fs::write(
            &cfg,
            format!(
                "{storage_hcl}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n{listener_hcl}\n}}\ndisable_mlock = true\n{extra_hcl}\n"
            ),
        )
        .unwrap();
        vec!["server".to_string(), format!("-config={}", cfg.display())]
    };
    spawn_on_free_port(args, prepare)
}

impl Server {
    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // give the output readers a moment to catch the last lines
                std::thread::sleep(Duration::from_millis(100));
                return Err(self.output());
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/v1/sys/seal-status", self.addr))
                .send()
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(self.output())
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The output once it contains `needle` (the server's output reaches the test through a
    /// reader thread, so a line printed before the listener answered may still be on its way).
    pub fn output_with(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            if out.contains(needle) || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self.client.request(m, format!("{}/v1/{}", self.addr, path));
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().expect("request failed");
        decode(r)
    }

    /// Request as root.
    pub fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req(method, path, Some(&self.token.clone()), body)
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        content_type: &str,
    ) -> (u16, Value) {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let mut rb = self
            .client
            .request(m, format!("{}/v1/{}", self.addr, path))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(t) = token {
            rb = rb.header("X-Vault-Token", t);
        }
        decode(rb.send().expect("request failed"))
    }

    /// Send one request over a raw TCP connection, path byte-for-byte as given.
    pub fn raw_http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let hostport = self.addr.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(hostport).unwrap();
        let req = format!(
            "{method} /v1/{path} HTTP/1.1\r\nHost: {hostport}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.token,
            body.len()
        );
        conn.write_all(req.as_bytes()).unwrap();
        // the server may reset the connection after answering; keep what arrived
        let mut buf = Vec::new();
        let _ = conn.read_to_end(&mut buf);
        let out = String::from_utf8_lossy(&buf).into_owned();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    /// Initialise a server with a static seal (it unseals itself); returns the root token.
    pub fn init_static(&mut self) -> String {
        let (st, v) = self.req(
            "PUT",
            "sys/init",
            None,
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(st, 200, "{v}");
        let root = v["root_token"].as_str().unwrap().to_string();
        self.token = root.clone();
        root
    }

    /// Initialise with `shares`/`threshold` and unseal; returns (keys, root token).
    pub fn init_and_unseal(&mut self, shares: u64, threshold: u64) -> (Vec<String>, String) {
        let (s, v) = self.req(
            "PUT",
            "sys/init",
            None,
            Some(json!({"secret_shares": shares, "secret_threshold": threshold})),
        );
        assert_eq!(s, 200, "{v}");
        let keys: Vec<String> = v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        let root = v["root_token"].as_str().unwrap().to_string();
        self.unseal(&keys[..threshold as usize]);
        self.token = root.clone();
        (keys, root)
    }

    pub fn unseal(&self, keys: &[String]) {
        for k in keys {
            let (s, v) = self.req("PUT", "sys/unseal", None, Some(json!({"key": k})));
            assert_eq!(s, 200, "{v}");
        }
        let (_, v) = self.req("GET", "sys/seal-status", None, None);
        assert_eq!(v["sealed"], false, "{v}");
    }

    /// Create a token with the given policies; returns the token.
    pub fn token_with(&self, policies: &[&str]) -> String {
        let (s, v) = self.root(
            "POST",
            "auth/token/create",
            Some(json!({"policies": policies})),
        );
        assert_eq!(s, 200, "{v}");
        v["auth"]["client_token"].as_str().unwrap().to_string()
    }

    pub fn policy(&self, name: &str, hcl: &str) {
        let (s, v) = self.root(
            "PUT",
            &format!("sys/policy/{name}"),
            Some(json!({"policy": hcl})),
        );
        assert_eq!(s, 204, "{v}");
    }
}

pub fn decode(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().unwrap_or_default();
    if !text.is_empty() {
        assert_eq!(
            ct, "application/json",
            "content type must be exactly application/json: {text}"
        );
    }
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

/// File storage under `dir` and a static seal whose key is written there: (storage, seal) HCL.
pub fn static_seal_config(dir: &Path) -> (String, String) {
    let key = dir.join("seal.key");
    std::fs::write(&key, "42".repeat(32)).unwrap();
    let storage = format!(
        "storage \"file\" {{ path = \"{}\" }}",
        dir.join("data").display()
    );
    let seal = format!(
        "seal \"static\" {{\n current_key_id = \"k1\"\n current_key = \"file://{}\"\n}}",
        key.display()
    );
    (storage, seal)
}

/// Every byte of every file under `dir`.
pub fn read_tree(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
