//! Dev-mode HTTPS: the HTTPS listener beside the HTTP one, the CA generated at start, the printed
//! exports, the private directory and its removal at shutdown.

use crate::common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The rest of the first line the server printed that starts with `prefix` (waits for it).
fn printed(s: &Server, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(rest) = s.output().lines().find_map(|l| l.strip_prefix(prefix)) {
            return rest.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line starting with {prefix:?}:\n{}",
            s.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that trusts the CA at `ca` and nothing else.
fn trusting(ca: &Path) -> reqwest::blocking::Client {
    let cert = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::blocking::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[test]
fn dev_serves_https_with_a_generated_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let tls_port = free_port();
    let mut s = dev_prepared(
        &[&format!("-dev-tls-listen-address=127.0.0.1:{tls_port}")],
        |c| {
            c.env("TMPDIR", tmp.path());
        },
    );
    let ca = PathBuf::from(printed(&s, "CA certificate: "));
    let dir = ca.parent().unwrap().to_path_buf();
    assert!(dir.starts_with(tmp.path()), "{}", dir.display());

    // the banner: the exports for HTTPS clients, and both listeners
    let out = s.output();
    let ca_s = ca.to_str().unwrap();
    for line in [
        format!("    $ export VAULT_ADDR='https://127.0.0.1:{tls_port}'"),
        format!("    $ export VAULT_CACERT='{ca_s}'"),
        format!("    $ export REQUESTS_CA_BUNDLE='{ca_s}'"),
        format!("    $ export SSL_CERT_FILE='{ca_s}'"),
        format!("    $ export NODE_EXTRA_CA_CERTS='{ca_s}'"),
        format!("==> Coffer server listening on https://127.0.0.1:{tls_port} "),
        format!("==> Coffer server listening on {} ", s.addr),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }

    // a private directory; the only private key in it is the server's, not the CA's
    assert_eq!(mode(&dir), 0o700);
    let mut keys = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        let text = std::fs::read_to_string(&p).unwrap();
        if text.contains("PRIVATE KEY") {
            keys.push(rcgen::KeyPair::from_pem(&text).unwrap());
        }
    }
    assert_eq!(keys.len(), 1, "one private key (the server's)");
    let ca_der = pem_der(&std::fs::read_to_string(&ca).unwrap());
    assert!(
        !contains(&ca_der, keys[0].public_key_raw()),
        "the key in the directory is the CA's"
    );

    // sys/health and a kv v2 round trip over HTTPS, by IP address and by name
    let https = trusting(&ca);
    for host in ["127.0.0.1", "localhost"] {
        let base = format!("https://{host}:{tls_port}/v1");
        let r = https
            .get(format!("{base}/sys/health"))
            .send()
            .unwrap_or_else(|e| panic!("{host}: {e:?}"));
        let (st, v) = decode(r);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["sealed"], false, "{v}");
        let r = https
            .post(format!("{base}/secret/data/dev-tls/{host}"))
            .header("X-Vault-Token", ROOT)
            .json(&json!({"data": {"host": host}}))
            .send()
            .unwrap();
        let (st, v) = decode(r);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"]["version"], 1, "{v}");
        let r = https
            .get(format!("{base}/secret/data/dev-tls/{host}"))
            .header("X-Vault-Token", ROOT)
            .send()
            .unwrap();
        let (st, v) = decode(r);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["data"]["data"]["host"], host, "{v}");
    }
    // one core behind both listeners: written over HTTPS, read over HTTP
    let (st, v) = s.root("GET", "secret/data/dev-tls/localhost", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["data"]["host"], "localhost", "{v}");

    // a client that does not trust the generated CA is refused
    let untrusting = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("https://127.0.0.1:{tls_port}/v1/sys/health"))
        .send()
        .is_err());

    // the coffer CLI with exactly the printed exports
    let cli = Command::new(bin())
        .args(["kv", "get", "-field=host", "secret/dev-tls/127.0.0.1"])
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env_remove("COFFER_CACERT")
        .env("HOME", tmp.path())
        .env("VAULT_ADDR", format!("https://127.0.0.1:{tls_port}"))
        .env("VAULT_CACERT", &ca)
        .env("VAULT_TOKEN", ROOT)
        .output()
        .unwrap();
    assert!(cli.status.success(), "{cli:?}");
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "127.0.0.1");

    // a clean shutdown removes the directory
    // SAFETY: plain kill(2) of our own child
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(is_empty_dir(tmp.path()));
}

/// A busy HTTPS port is one error line naming the address and the flag that moves it, and the
/// certificates' directory does not outlive the failed start.
#[test]
fn busy_dev_https_port_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(bin())
        .args([
            "server".to_string(),
            "-dev".into(),
            format!("-dev-listen-address=127.0.0.1:{}", free_port()),
            format!("-dev-tls-listen-address={addr}"),
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("Error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for part in [
        "dev HTTPS listener",
        "-dev-tls-listen-address",
        &format!("cannot listen on {addr}"),
    ] {
        assert!(lines[0].contains(part), "{part:?} not in {err}");
    }
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
    assert!(
        is_empty_dir(tmp.path()),
        "the certificates' directory is left"
    );
}

/// Listeners from a `-config` given with `-dev` replace both dev listeners: no HTTPS listener, no
/// CA, and an explicit `-dev-tls-listen-address` is reported as ignored.
#[test]
fn configured_listeners_replace_the_dev_https_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let tls_port = free_port();
    let cfg = tmp.path().join("listeners.hcl");
    std::fs::write(
        &cfg,
        format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n tls_disable = true\n}}\n"),
    )
    .unwrap();
    let certs = tmp.path().join("tmp");
    std::fs::create_dir(&certs).unwrap();
    let s = spawn_with(
        &[
            "server".to_string(),
            "-dev".into(),
            format!("-dev-root-token-id={ROOT}"),
            format!("-config={}", cfg.display()),
            format!("-dev-tls-listen-address=127.0.0.1:{tls_port}"),
        ],
        port,
        |c| {
            c.env("TMPDIR", &certs);
        },
    );
    let (st, _) = s.root("GET", "sys/health", None);
    assert_eq!(st, 200);
    printed(&s, "==> Coffer server listening on http://");
    let out = s.output();
    assert!(!out.contains("CA certificate"), "{out}");
    assert!(!out.contains("https://"), "{out}");
    assert!(out.contains("-dev-tls-listen-address is ignored"), "{out}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_err());
    assert!(is_empty_dir(&certs));
}
