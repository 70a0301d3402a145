use crate::common::*;
use std::time::Duration;

fn write_cert(dir: &std::path::Path) -> (String, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert.display().to_string(), key.display().to_string())
}

fn start_tls(dir: &std::path::Path, extra_listener: &str) -> (std::process::Child, u16) {
    let (cert, key) = write_cert(dir);
    let port = free_port();
    let cfg = dir.join("tls.hcl");
    std::fs::write(
        &cfg,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n tls_cert_file = \"{cert}\"\n tls_key_file = \"{key}\"\n{extra_listener}\n}}\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(bin())
        .arg("server")
        .arg(format!("-config={}", cfg.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

#[test]
fn tls_listener_serves_https_only() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, port) = start_tls(dir.path(), "");
    let https = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut ok = false;
    for _ in 0..200 {
        if let Ok(r) = https
            .get(format!("https://127.0.0.1:{port}/v1/sys/seal-status"))
            .send()
        {
            assert_eq!(r.status().as_u16(), 200);
            let v: serde_json::Value = r.json().unwrap();
            assert_eq!(v["initialized"], false);
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ok, "https listener never answered");
    let plain = reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/sys/seal-status"))
        .send();
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain http must not work on a TLS listener"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn tls_client_cert_required() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["client-ca".into()]).unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let (mut child, port) = start_tls(
        dir.path(),
        &format!(
            " tls_client_ca_file = \"{}\"\n tls_require_and_verify_client_cert = true",
            ca_path.display()
        ),
    );
    let https = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // wait for the port, then check that a client without a certificate is refused
    let mut refused = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            refused = https
                .get(format!("https://127.0.0.1:{port}/v1/sys/seal-status"))
                .send()
                .is_err();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused, "a client without a certificate must be refused");
    let _ = child.kill();
    let _ = child.wait();
}
