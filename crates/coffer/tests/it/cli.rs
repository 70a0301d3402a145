//! The `coffer` command line against a real dev server: exit codes, output and the token file.
//! Every command runs with a cleared environment, `COFFER_ADDR`, and HOME set to a temporary
//! directory, so ~/.coffer-token and the caller's VAULT_*/COFFER_* variables never leak in.

use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The outcome of one CLI run.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// Runs the CLI against one server, with one HOME and (optionally) one token in COFFER_TOKEN.
struct Cli<'a> {
    server: &'a Server,
    home: PathBuf,
    token: Option<String>,
    env: Vec<(String, String)>,
}

impl<'a> Cli<'a> {
    /// As root (COFFER_TOKEN=ROOT), with a fresh HOME inside `dir`.
    fn new(server: &'a Server, dir: &Path) -> Self {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Cli {
            server,
            home,
            token: Some(server.token.clone()),
            env: Vec::new(),
        }
    }

    /// The same HOME with another token (`None`: no COFFER_TOKEN, so the stored one is used).
    fn with_token(&self, token: Option<&str>) -> Cli<'a> {
        Cli {
            server: self.server,
            home: self.home.clone(),
            token: token.map(str::to_string),
            env: self.env.clone(),
        }
    }

    fn with_env(&self, key: &str, value: &str) -> Cli<'a> {
        let mut env = self.env.clone();
        env.push((key.to_string(), value.to_string()));
        Cli {
            server: self.server,
            home: self.home.clone(),
            token: self.token.clone(),
            env,
        }
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("COFFER_ADDR", &self.server.addr)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(t) = &self.token {
            cmd.env("COFFER_TOKEN", t);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn coffer");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, None)
    }

    /// Runs and asserts exit code 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "coffer {args:?}: {out:?}");
        out.stdout
    }

    /// Runs and asserts `code`; returns the whole outcome.
    fn fails(&self, code: i32, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, code, "coffer {args:?}: {out:?}");
        assert!(!out.stderr.trim().is_empty(), "no message: {out:?}");
        out
    }

    fn token_file(&self) -> PathBuf {
        self.home.join(".coffer-token")
    }
}

/// The value of `key` in a Key/Value table.
fn table_value(table: &str, key: &str) -> Option<String> {
    table.lines().find_map(|line| {
        let mut parts = line.splitn(2, char::is_whitespace);
        (parts.next() == Some(key)).then(|| parts.next().unwrap_or("").trim().to_string())
    })
}

#[test]
fn kv_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    let out = c.ok(&["kv", "put", "secret/app", "user=alice", "pw=s3cret-one"]);
    assert!(
        out.starts_with("= Secret Path =\nsecret/data/app\n"),
        "{out}"
    );
    assert_eq!(table_value(&out, "version").as_deref(), Some("1"), "{out}");

    let out = c.ok(&["kv", "get", "secret/app"]);
    assert!(out.contains("==== Data ===="), "{out}");
    assert_eq!(table_value(&out, "pw").as_deref(), Some("s3cret-one"));
    assert_eq!(table_value(&out, "user").as_deref(), Some("alice"));
    // -field prints the raw value, without a newline in a pipe
    assert_eq!(
        c.ok(&["kv", "get", "-field=pw", "secret/app"]),
        "s3cret-one"
    );
    let v = c.run(&["kv", "get", "-format=json", "secret/app"]).json();
    assert_eq!(v["data"]["data"]["pw"], "s3cret-one");
    assert_eq!(v["data"]["metadata"]["version"], 1);
    // flags after the path work too (Vault style), as does the -mount form
    assert_eq!(
        c.ok(&["kv", "get", "-mount=secret", "-field=user", "app"]),
        "alice"
    );

    let out = c.ok(&["kv", "put", "-format=json", "secret/app", "pw=s3cret-two"]);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["data"]["version"],
        2
    );
    assert_eq!(
        c.ok(&["kv", "get", "-version=1", "-field=pw", "secret/app"]),
        "s3cret-one"
    );
    assert_eq!(
        c.ok(&["kv", "get", "-field=pw", "secret/app"]),
        "s3cret-two"
    );
    // patch merges
    c.ok(&["kv", "patch", "secret/app", "extra=x"]);
    let v = c.run(&["kv", "get", "-format=json", "secret/app"]).json();
    assert_eq!(v["data"]["data"]["pw"], "s3cret-two");
    assert_eq!(v["data"]["data"]["extra"], "x");

    c.ok(&["kv", "put", "secret/other/nested", "a=b"]);
    let out = c.ok(&["kv", "list", "secret/"]);
    assert!(out.starts_with("Keys\n----\n"), "{out}");
    assert!(out.lines().any(|l| l == "app") && out.lines().any(|l| l == "other/"));
    let v = c.run(&["kv", "list", "-format=json", "secret"]).json();
    assert_eq!(v, serde_json::json!(["app", "other/"]));

    c.ok(&["kv", "metadata", "put", "-max-versions=5", "secret/app"]);
    let out = c.ok(&["kv", "metadata", "get", "secret/app"]);
    assert!(out.contains("== Metadata Path =="), "{out}");
    assert_eq!(table_value(&out, "max_versions").as_deref(), Some("5"));
    assert_eq!(table_value(&out, "current_version").as_deref(), Some("3"));
    assert!(out.contains("== Version 1 =="), "{out}");
    let v = c
        .run(&["kv", "metadata", "get", "-format=json", "secret/app"])
        .json();
    assert_eq!(v["data"]["max_versions"], 5);

    // delete the latest version: no data, but undelete brings it back
    assert!(c
        .ok(&["kv", "delete", "secret/app"])
        .contains("Success! Data deleted (if it existed) at: secret/data/app"));
    let out = c.fails(2, &["kv", "get", "-field=pw", "secret/app"]);
    assert!(out.stderr.contains("No data found"), "{out:?}");
    c.ok(&["kv", "undelete", "-versions=3", "secret/app"]);
    assert_eq!(
        c.ok(&["kv", "get", "-field=pw", "secret/app"]),
        "s3cret-two"
    );
    c.ok(&["kv", "destroy", "-versions=1", "secret/app"]);
    c.fails(2, &["kv", "get", "-version=1", "-field=pw", "secret/app"]);

    c.ok(&["kv", "metadata", "delete", "secret/app"]);
    let out = c.fails(2, &["kv", "get", "secret/app"]);
    assert!(
        out.stderr.contains("No value found at secret/data/app"),
        "{out:?}"
    );
    c.fails(2, &["kv", "list", "secret/nothing-here/"]);

    // generic read/write/list/delete on the same data
    let out = c.run_with_stdin(
        &["write", "secret/data/gen", "-"],
        Some(r#"{"data": {"g": "1"}}"#),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let v = c.run(&["read", "-format=json", "secret/data/gen"]).json();
    assert_eq!(v["data"]["data"]["g"], "1", "{v}");
    assert_eq!(
        c.ok(&["read", "-field=data", "secret/data/gen"]),
        "map[g:1]"
    );
    let out = c.ok(&["list", "secret/metadata"]);
    assert!(out.contains("gen"), "{out}");
    c.ok(&["delete", "secret/metadata/gen"]);
    c.fails(2, &["read", "secret/data/gen"]);
}

#[test]
fn policies() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    let file = dir.path().join("ro.hcl");
    std::fs::write(
        &file,
        "path \"secret/data/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .unwrap();
    let out = c.ok(&["policy", "write", "ro", file.to_str().unwrap()]);
    assert_eq!(out.trim(), "Success! Uploaded policy: ro");
    let rw = "path \"secret/*\" {\n  capabilities = [\"create\", \"read\", \"update\"]\n}\n";
    let out = c.run_with_stdin(&["policy", "write", "rw", "-"], Some(rw));
    assert_eq!(out.code, 0, "{out:?}");

    let out = c.ok(&["policy", "read", "ro"]);
    assert!(out.contains("capabilities = [\"read\"]"), "{out}");
    assert!(c.ok(&["policy", "read", "rw"]).contains("\"update\""));
    let v = c.run(&["policy", "read", "-format=json", "rw"]).json();
    assert!(
        v["data"]["policy"].as_str().unwrap().contains("update"),
        "{v}"
    );

    let out = c.ok(&["policy", "list"]);
    for name in ["default", "ro", "rw"] {
        assert!(out.lines().any(|l| l == name), "{name}: {out}");
    }
    let v = c.run(&["policy", "list", "-format=json"]).json();
    assert!(v.as_array().unwrap().contains(&Value::from("ro")), "{v}");

    // the policy is enforced: a token with only "ro" can read but not write
    c.ok(&["kv", "put", "secret/p", "k=v"]);
    let tok = c.ok(&["token", "create", "-policy=ro", "-field=token"]);
    let limited = c.with_token(Some(&tok));
    assert_eq!(limited.ok(&["kv", "get", "-field=k", "secret/p"]), "v");
    let out = limited.fails(1, &["kv", "put", "secret/p", "k=leaked-value"]);
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    assert!(!out.stderr.contains("leaked-value"), "{out:?}");

    assert_eq!(
        c.ok(&["policy", "delete", "ro"]).trim(),
        "Success! Deleted policy: ro"
    );
    let out = c.fails(2, &["policy", "read", "ro"]);
    assert!(out.stderr.contains("No policy named: ro"), "{out:?}");
    c.fails(1, &["policy", "write", "bad", "/nonexistent/file.hcl"]);
    let out = c.run_with_stdin(&["policy", "write", "bad", "-"], Some("path {{{"));
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    s.policy("ro", "path \"secret/*\" { capabilities = [\"read\"] }");

    let tok = c.ok(&[
        "token",
        "create",
        "-policy=ro",
        "-ttl=1h",
        "-display-name=ci",
        "-metadata=team=ops",
        "-field=token",
    ]);
    assert!(!tok.is_empty() && !tok.contains('\n'), "{tok:?}");
    let out = c.ok(&["token", "create", "-policy=ro", "-ttl=1h"]);
    for key in [
        "token",
        "token_accessor",
        "token_duration",
        "token_renewable",
        "token_policies",
    ] {
        assert!(table_value(&out, key).is_some(), "{key}: {out}");
    }
    assert_eq!(table_value(&out, "token_duration").as_deref(), Some("1h"));
    assert_eq!(
        table_value(&out, "token_policies").as_deref(),
        Some("[\"default\" \"ro\"]")
    );

    let out = c.ok(&["token", "lookup", &tok]);
    assert_eq!(
        table_value(&out, "policies").as_deref(),
        Some("[default ro]"),
        "{out}"
    );
    assert_eq!(
        table_value(&out, "display_name").as_deref(),
        Some("token-ci")
    );
    let v = c.run(&["token", "lookup", "-format=json", &tok]).json();
    let ttl = v["data"]["ttl"].as_u64().unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{v}");
    assert_eq!(v["data"]["meta"]["team"], "ops");
    let accessor = v["data"]["accessor"].as_str().unwrap().to_string();
    // self lookup with the token itself, and lookup by accessor
    let me = c.with_token(Some(&tok));
    let v = me.run(&["token", "lookup", "-format=json"]).json();
    assert_eq!(v["data"]["accessor"], accessor.as_str());
    assert_eq!(
        c.ok(&[
            "token",
            "lookup",
            "-accessor",
            "-field=display_name",
            &accessor
        ]),
        "token-ci"
    );

    let out = c.ok(&["token", "renew", "-increment=30m", &tok]);
    assert_eq!(table_value(&out, "token_duration").as_deref(), Some("30m"));
    let v = me.run(&["token", "renew", "-format=json"]).json();
    assert!(v["auth"]["lease_duration"].as_u64().unwrap() > 0, "{v}");

    assert!(c
        .ok(&["token", "revoke", &tok])
        .contains("Success! Revoked token"));
    let out = c.fails(1, &["token", "lookup", &tok]);
    assert!(!out.stderr.contains(&tok), "{out:?}");
    me.fails(1, &["token", "lookup"]);
    c.fails(2, &["token", "revoke"]);

    // revoke -self
    let tok2 = c.ok(&["token", "create", "-field=token"]);
    let me2 = c.with_token(Some(&tok2));
    me2.ok(&["token", "revoke", "-self"]);
    me2.fails(1, &["token", "lookup"]);
}

#[test]
fn secrets_engines() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    let out = c.ok(&[
        "secrets",
        "enable",
        "-path=kv2",
        "-version=2",
        "-description=team secrets",
        "kv",
    ]);
    assert_eq!(
        out.trim(),
        "Success! Enabled the kv secrets engine at: kv2/"
    );
    let out = c.ok(&["secrets", "list"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("kv2/"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains(" kv ") && row.ends_with("team secrets"),
        "{row}"
    );
    assert!(out.lines().any(|l| l.starts_with("secret/")), "{out}");
    let v = c.run(&["secrets", "list", "-format=json"]).json();
    assert_eq!(v["kv2/"]["options"]["version"], "2");
    assert_eq!(v["kv2/"]["type"], "kv");

    // it is a working kv v2 mount
    c.ok(&["kv", "put", "kv2/x", "a=b"]);
    assert_eq!(c.ok(&["kv", "get", "-field=a", "kv2/x"]), "b");

    let out = c.ok(&[
        "secrets",
        "tune",
        "-max-lease-ttl=2h",
        "-default-lease-ttl=30m",
        "kv2",
    ]);
    assert_eq!(out.trim(), "Success! Tuned the secrets engine at: kv2/");
    let v = c
        .run(&["read", "-format=json", "sys/mounts/kv2/tune"])
        .json();
    assert_eq!(v["data"]["max_lease_ttl"], 7200, "{v}");
    assert_eq!(v["data"]["default_lease_ttl"], 1800, "{v}");
    let out = c.ok(&["secrets", "list", "-detailed"]);
    let row = out.lines().find(|l| l.starts_with("kv2/")).unwrap();
    assert!(row.contains("30m") && row.contains("2h"), "{row}");

    // errors: taken path (server error), bad option
    let out = c.fails(1, &["secrets", "enable", "-path=kv2", "-version=2", "kv"]);
    assert!(out.stderr.contains("already in use"), "{out:?}");
    c.fails(1, &["secrets", "tune", "-max-lease-ttl=forever", "kv2"]);

    let out = c.ok(&["secrets", "disable", "kv2"]);
    assert_eq!(
        out.trim(),
        "Success! Disabled the secrets engine (if it existed) at: kv2/"
    );
    assert!(!c.ok(&["secrets", "list"]).contains("kv2/"));
    c.fails(2, &["kv", "get", "kv2/x"]);
}

#[test]
fn status_and_seal() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    let out = c.ok(&["status"]);
    assert_eq!(
        table_value(&out, "Sealed").as_deref(),
        Some("false"),
        "{out}"
    );
    let v = c.run(&["status", "-format=json"]).json();
    assert_eq!(v["sealed"], false);
    assert_eq!(c.ok(&["operator", "status"]), out);
    // unreachable: 1
    let out = c.run(&["status", "-address=http://127.0.0.1:9"]);
    assert_eq!(out.code, 1, "{out:?}");
    // sealed: 2
    c.ok(&["operator", "seal"]);
    let out = c.run(&["status"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(table_value(&out.stdout, "Sealed").as_deref(), Some("true"));
}

#[test]
fn login_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let root = Cli::new(&s, dir.path());
    let anon = root.with_token(None);
    assert!(!anon.token_file().exists());
    anon.fails(1, &["token", "lookup"]);

    let out = anon.ok(&["login", ROOT]);
    assert!(
        out.starts_with("Success! You are now authenticated."),
        "{out}"
    );
    assert_eq!(table_value(&out, "token").as_deref(), Some(ROOT));
    assert_eq!(
        table_value(&out, "token_policies").as_deref(),
        Some("[\"root\"]")
    );
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), ROOT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(anon.token_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // the stored token is used from now on
    let v = anon.run(&["token", "lookup", "-format=json"]).json();
    assert_eq!(v["data"]["id"], ROOT);

    // -no-store leaves the file alone; the token may come from stdin
    let other = root.ok(&["token", "create", "-policy=default", "-field=token"]);
    let out = anon.run_with_stdin(&["login", "-no-store", "-"], Some(&format!("{other}\n")));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("NOT stored"), "{out:?}");
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), ROOT);
    assert_eq!(anon.ok(&["login", "-token-only", &other]), other);
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), ROOT);
    let v = anon
        .run(&["login", "-no-store", "-format=json", &other])
        .json();
    assert_eq!(v["auth"]["client_token"], other.as_str());

    // a bad token: exit 1, the file is kept, the token is not echoed
    let out = anon.fails(1, &["login", "not-a-real-token-123"]);
    assert!(!out.stderr.contains("not-a-real-token-123"), "{out:?}");
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), ROOT);
    // no token at all (stdin is empty): an error, nothing stored
    anon.fails(1, &["login"]);

    // logging in with another token replaces the stored one
    anon.ok(&["login", "-no-print", &other]);
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), other);
    let v = anon.run(&["token", "lookup", "-format=json"]).json();
    assert_eq!(v["data"]["id"], other.as_str());
    // unknown method: usage error
    anon.fails(2, &["login", "-method=nope", "x=y"]);
}

#[test]
fn audit_devices() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    let log = dir.path().join("audit.log");
    let log_arg = format!("file_path={}", log.display());

    assert!(c.ok(&["audit", "list"]).contains("No audit devices"));
    let out = c.ok(&["audit", "enable", "-description=main log", "file", &log_arg]);
    assert_eq!(
        out.trim(),
        "Success! Enabled the file audit device at: file/"
    );
    let out = c.ok(&["audit", "list"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("file/") && l.contains("file") && l.contains("main log")),
        "{out}"
    );
    let v = c.run(&["audit", "list", "-format=json"]).json();
    assert_eq!(v["file/"]["type"], "file", "{v}");

    c.ok(&["kv", "put", "secret/audited", "pw=audit-secret-value"]);
    c.ok(&["kv", "get", "secret/audited"]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() >= 4, "{text}");
    assert!(
        !text.contains("audit-secret-value"),
        "audit log holds plaintext"
    );

    let log_path = log.to_str().unwrap();
    c.ok(&["audit", "verify", log_path]);
    // a tampered copy fails verification
    let tampered = dir.path().join("tampered.log");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.remove(1);
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let out = c.fails(1, &["audit", "verify", tampered.to_str().unwrap()]);
    assert!(out.stderr.contains("FAILED"), "{out:?}");

    let out = c.ok(&["audit", "disable", "file"]);
    assert!(out.contains("Success! Disabled audit device"), "{out}");
    assert!(c.ok(&["audit", "list"]).contains("No audit devices"));
}

/// The lease ids of the token leases (`LIST sys/leases/lookup/auth/token/create/`).
fn token_leases(c: &Cli<'_>) -> Vec<String> {
    let out = c.run(&[
        "list",
        "-format=json",
        "sys/leases/lookup/auth/token/create/",
    ]);
    if out.code == 2 {
        return Vec::new();
    }
    assert_eq!(out.code, 0, "{out:?}");
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|k| format!("auth/token/create/{}", k.as_str().unwrap()))
        .collect()
}

#[test]
fn leases() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    let before = token_leases(&c);
    let tok = c.ok(&["token", "create", "-ttl=1h", "-field=token"]);
    let after = token_leases(&c);
    let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert_eq!(new.len(), 1, "{before:?} -> {after:?}");
    let lease = new[0].clone();

    let out = c.ok(&["lease", "lookup", &lease]);
    assert_eq!(table_value(&out, "id").as_deref(), Some(lease.as_str()));
    assert_eq!(table_value(&out, "renewable").as_deref(), Some("true"));
    let v = c.run(&["lease", "lookup", "-format=json", &lease]).json();
    assert_eq!(v["data"]["id"], lease.as_str());
    let ttl = v["data"]["ttl"].as_u64().unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "{v}");

    // as in Vault, a token's lease is renewed through the token, not sys/leases/renew
    let out = c.fails(1, &["lease", "renew", "-increment=30m", &lease]);
    assert!(out.stderr.contains("tokens cannot be renewed"), "{out:?}");
    c.ok(&["token", "renew", "-increment=30m", &tok]);
    let v = c.run(&["lease", "lookup", "-format=json", &lease]).json();
    assert!(v["data"]["ttl"].as_u64().unwrap() <= 1800, "{v}");
    assert!(v["data"]["last_renewal"].is_string(), "{v}");

    let out = c.ok(&["lease", "revoke", &lease]);
    assert_eq!(out.trim(), format!("Success! Revoked lease: {lease}"));
    c.fails(1, &["token", "lookup", &tok]);
    let out = c.fails(1, &["lease", "lookup", &lease]);
    assert!(out.stderr.contains("invalid lease"), "{out:?}");
    assert!(!token_leases(&c).contains(&lease));

    // by prefix, and forced
    let t1 = c.ok(&["token", "create", "-ttl=1h", "-field=token"]);
    let t2 = c.ok(&["token", "create", "-ttl=1h", "-field=token"]);
    let out = c.ok(&["lease", "revoke", "-prefix", "auth/token/create"]);
    assert_eq!(
        out.trim(),
        "Success! Revoked any leases with prefix: auth/token/create"
    );
    c.fails(1, &["token", "lookup", &t1]);
    c.fails(1, &["token", "lookup", &t2]);
    let t3 = c.ok(&["token", "create", "-ttl=1h", "-field=token"]);
    let out = c.run(&["lease", "revoke", "-prefix", "-force", "auth/token/create/"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Force revoked"), "{out:?}");
    assert!(out.stderr.contains("Warning"), "{out:?}");
    c.fails(1, &["token", "lookup", &t3]);

    // usage errors and permission
    c.fails(2, &["lease", "revoke", "-force", "auth/token/create"]);
    c.fails(2, &["lease", "renew", "-increment=later", "x/y"]);
    c.fails(2, &["lease", "lookup"]);
    let plain = c.ok(&["token", "create", "-policy=default", "-field=token"]);
    let out = c
        .with_token(Some(&plain))
        .fails(1, &["lease", "revoke", "-prefix", "auth/token/create"]);
    assert!(out.stderr.contains("permission denied"), "{out:?}");
}

#[test]
fn response_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    c.ok(&["kv", "put", "secret/w", "pw=wrapped-secret"]);

    // kv get -wrap-ttl: only the wrapping token comes back
    let out = c.ok(&["kv", "get", "-wrap-ttl=5m", "secret/w"]);
    assert!(!out.contains("wrapped-secret"), "{out}");
    for key in [
        "wrapping_token:",
        "wrapping_accessor:",
        "wrapping_token_ttl:",
        "wrapping_token_creation_time:",
        "wrapping_token_creation_path:",
    ] {
        assert!(table_value(&out, key).is_some(), "{key}: {out}");
    }
    assert_eq!(
        table_value(&out, "wrapping_token_ttl:").as_deref(),
        Some("5m")
    );
    assert_eq!(
        table_value(&out, "wrapping_token_creation_path:").as_deref(),
        Some("secret/data/w")
    );
    let wt = table_value(&out, "wrapping_token:").unwrap();
    let v = c.run(&["unwrap", "-format=json", &wt]).json();
    assert_eq!(v["data"]["data"]["pw"], "wrapped-secret");
    // single use
    let out = c.fails(1, &["unwrap", &wt]);
    assert!(out.stderr.contains("Error unwrapping"), "{out:?}");

    // -field=wrapping_token, then unwrap with the wrapping token as the token in use
    let wt = c.ok(&[
        "kv",
        "get",
        "-wrap-ttl=60",
        "-field=wrapping_token",
        "secret/w",
    ]);
    let out = c.with_token(Some(&wt)).ok(&["unwrap"]);
    assert!(out.contains("map[pw:wrapped-secret]"), "{out}");
    // -field on unwrap, and the token from stdin
    let wt = c.ok(&[
        "read",
        "-wrap-ttl=1m",
        "-field=wrapping_token",
        "secret/data/w",
    ]);
    let out = c.run_with_stdin(&["unwrap", "-field=data", "-format=json", "-"], Some(&wt));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.json()["pw"], "wrapped-secret");

    // token create -wrap-ttl: the new token is only inside the wrap
    let out = c.ok(&["token", "create", "-wrap-ttl=2m", "-policy=default"]);
    assert!(table_value(&out, "token").is_none(), "{out}");
    assert_eq!(
        table_value(&out, "wrapping_token_ttl:").as_deref(),
        Some("2m")
    );
    assert_eq!(
        table_value(&out, "wrapping_token_creation_path:").as_deref(),
        Some("auth/token/create")
    );
    let wrapped_accessor = table_value(&out, "wrapped_accessor:").unwrap();
    let wt = table_value(&out, "wrapping_token:").unwrap();
    let out = c.ok(&["unwrap", &wt]);
    assert_eq!(
        table_value(&out, "token_accessor").as_deref(),
        Some(wrapped_accessor.as_str())
    );
    let inner = table_value(&out, "token").unwrap();
    c.with_token(Some(&inner)).ok(&["token", "lookup"]);
    // -field=token of the unwrapped answer
    let wt = c.ok(&["token", "create", "-wrap-ttl=2m", "-field=wrapping_token"]);
    let inner = c.ok(&["unwrap", "-field=token", &wt]);
    c.with_token(Some(&inner)).ok(&["token", "lookup"]);

    // write -wrap-ttl
    let out = c.ok(&["write", "-wrap-ttl=1m", "auth/token/create", "ttl=10m"]);
    let wt = table_value(&out, "wrapping_token:").unwrap();
    let v = c.run(&["unwrap", "-format=json", &wt]).json();
    assert!(v["auth"]["client_token"].is_string(), "{v}");

    // a wrapped list unwraps to a list
    let out = c.ok(&["kv", "list", "-wrap-ttl=1m", "secret/"]);
    let wt = table_value(&out, "wrapping_token:").unwrap();
    let out = c.ok(&["unwrap", &wt]);
    assert_eq!(out, "Keys\n----\nw\n");

    // the environment variable works too, and JSON output carries wrap_info
    let v = c
        .with_env("COFFER_WRAP_TTL", "90s")
        .run(&["kv", "get", "-format=json", "secret/w"])
        .json();
    assert_eq!(v["wrap_info"]["ttl"], 90, "{v}");
    assert!(v["data"].is_null(), "{v}");

    // bad TTLs: syntax is a usage error, range is the server's
    c.fails(2, &["kv", "get", "-wrap-ttl=soon", "secret/w"]);
    let out = c.fails(1, &["read", "-wrap-ttl=10000h", "secret/data/w"]);
    assert!(out.stderr.contains("wrap TTL"), "{out:?}");
    c.fails(1, &["unwrap", "not-a-wrapping-token"]);
    c.with_token(None).fails(2, &["unwrap"]);
    c.fails(2, &["unwrap", "a", "b"]);
}

/// Enables an auth method (the command must succeed).
fn enable_auth(c: &Cli<'_>, args: &[&str]) {
    let out = c.run(args);
    assert_eq!(out.code, 0, "coffer {args:?}: {out:?}");
}

#[test]
fn auth_methods() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    let out = c.ok(&["auth", "list"]);
    assert!(out.starts_with("Path "), "{out}");
    let row = out.lines().find(|l| l.starts_with("token/")).unwrap();
    assert!(row.contains(" token "), "{row}");
    let v = c.run(&["auth", "list", "-format=json"]).json();
    assert_eq!(v["token/"]["type"], "token");

    // tune the token method
    let out = c.ok(&["auth", "tune", "-default-lease-ttl=45m", "token"]);
    assert_eq!(out.trim(), "Success! Tuned the auth method at: token/");
    let v = c
        .run(&["read", "-format=json", "sys/auth/token/tune"])
        .json();
    assert_eq!(v["data"]["default_lease_ttl"], 2700, "{v}");
    let out = c.ok(&["auth", "tune", "-description=tokens!", "auth/token/"]);
    assert!(out.contains("token/"), "{out}");
    let v = c.run(&["auth", "list", "-format=json"]).json();
    assert_eq!(v["token/"]["description"], "tokens!");

    // an unknown type is the server's error
    let out = c.fails(1, &["auth", "enable", "no-such-method"]);
    assert!(
        out.stderr.contains("Error enabling no-such-method auth"),
        "{out:?}"
    );
    // disabling what is not there succeeds, as in Vault
    c.ok(&["auth", "disable", "never-enabled"]);
    c.fails(2, &["auth", "enable"]);

    // enable / list / disable for real, with approle if the server has it
    enable_auth(
        &c,
        &[
            "auth",
            "enable",
            "-path=robots",
            "-description=machines",
            "approle",
        ],
    );
    let kind = "approle";
    let out = c.ok(&["auth", "list"]);
    let row = out
        .lines()
        .find(|l| l.starts_with("robots/"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains(&format!(" {kind} ")) && row.ends_with("machines"),
        "{row}"
    );
    let v = c.run(&["auth", "list", "-format=json"]).json();
    assert_eq!(v["robots/"]["type"], kind);
    assert!(v["robots/"]["accessor"]
        .as_str()
        .is_some_and(|a| !a.is_empty()));
    let out = c.fails(1, &["auth", "enable", "-path=robots", kind]);
    assert!(out.stderr.contains("already in use"), "{out:?}");
    let out = c.ok(&["auth", "disable", "robots"]);
    assert_eq!(
        out.trim(),
        "Success! Disabled the auth method (if it existed) at: robots/"
    );
    assert!(!c.ok(&["auth", "list"]).contains("robots/"));
}

#[test]
fn approle_login() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    let out = c.fails(2, &["login", "-method=approle", "secret_id=x"]);
    assert!(out.stderr.contains("role_id"), "{out:?}");
    enable_auth(&c, &["auth", "enable", "-path=ar", "approle"]);
    s.policy("ro", "path \"secret/*\" { capabilities = [\"read\"] }");
    c.ok(&[
        "write",
        "auth/ar/role/web",
        "token_policies=ro",
        "token_ttl=1h",
    ]);
    let role_id = c.ok(&["read", "-field=role_id", "auth/ar/role/web/role-id"]);
    let secret_id = c.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/ar/role/web/secret-id",
    ]);
    assert!(!role_id.is_empty() && !secret_id.is_empty());

    let anon = c.with_token(None);
    let role_arg = format!("role_id={role_id}");
    let out = anon.ok(&[
        "login",
        "-method=approle",
        "-path=ar",
        &role_arg,
        &format!("secret_id={secret_id}"),
    ]);
    assert!(
        out.starts_with("Success! You are now authenticated."),
        "{out}"
    );
    for key in [
        "token",
        "token_accessor",
        "token_duration",
        "token_renewable",
        "token_policies",
    ] {
        assert!(table_value(&out, key).is_some(), "{key}: {out}");
    }
    assert!(
        table_value(&out, "token_policies")
            .unwrap()
            .contains("\"ro\""),
        "{out}"
    );
    let token = table_value(&out, "token").unwrap();
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), token);
    let v = anon.run(&["token", "lookup", "-format=json"]).json();
    assert!(
        v["data"]["policies"]
            .as_array()
            .unwrap()
            .contains(&Value::from("ro")),
        "{v}"
    );

    // secret_id from stdin, not stored
    let out = anon.run_with_stdin(
        &[
            "login",
            "-method=approle",
            "-path=ar",
            "-no-store",
            "-field=token",
            &role_arg,
            "secret_id=-",
        ],
        Some(&format!("{secret_id}\n")),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_ne!(out.stdout, token);
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), token);

    // a wrong secret_id: exit 1, nothing echoed
    let out = anon.fails(
        1,
        &[
            "login",
            "-method=approle",
            "-path=ar",
            &role_arg,
            "secret_id=wrong-secret-id-42",
        ],
    );
    assert!(!out.stderr.contains("wrong-secret-id-42"), "{out:?}");
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), token);
}

#[test]
fn userpass_login() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());
    c.fails(2, &["login", "-method=userpass", "password=x"]);
    enable_auth(&c, &["auth", "enable", "userpass"]);
    s.policy("ro", "path \"secret/*\" { capabilities = [\"read\"] }");
    c.ok(&[
        "write",
        "auth/userpass/users/bob",
        "password=hunter2-pw",
        "token_policies=ro",
    ]);

    let anon = c.with_token(None);
    let out = anon.ok(&[
        "login",
        "-method=userpass",
        "username=bob",
        "password=hunter2-pw",
    ]);
    assert!(
        out.starts_with("Success! You are now authenticated."),
        "{out}"
    );
    assert!(
        table_value(&out, "token_policies")
            .unwrap()
            .contains("\"ro\""),
        "{out}"
    );
    let token = table_value(&out, "token").unwrap();
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), token);
    let v = anon.run(&["token", "lookup", "-format=json"]).json();
    assert_eq!(v["data"]["id"], token.as_str());

    // the password is prompted for (here: read from stdin, which is not a terminal)
    let out = anon.run_with_stdin(
        &[
            "login",
            "-method=userpass",
            "-no-store",
            "-format=json",
            "username=bob",
        ],
        Some("hunter2-pw\n"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.json()["auth"]["client_token"].is_string());
    assert!(!out.stdout.contains("hunter2-pw") && !out.stderr.contains("hunter2-pw"));

    // a wrapped login is unwrapped and stored; with -no-store the wrapping token is printed
    let out = anon.ok(&[
        "login",
        "-method=userpass",
        "-wrap-ttl=1m",
        "-no-print",
        "username=bob",
        "password=hunter2-pw",
    ]);
    assert!(out.is_empty(), "{out}");
    let stored = std::fs::read_to_string(anon.token_file()).unwrap();
    assert_ne!(stored, token);
    anon.ok(&["token", "lookup"]);
    let out = anon.ok(&[
        "login",
        "-method=userpass",
        "-wrap-ttl=1m",
        "-no-store",
        "username=bob",
        "password=hunter2-pw",
    ]);
    let wt = table_value(&out, "wrapping_token:").unwrap_or_else(|| panic!("{out}"));
    let v = c.run(&["unwrap", "-format=json", &wt]).json();
    assert!(v["auth"]["client_token"].is_string(), "{v}");

    // a wrong password: exit 1, the password is not echoed, the stored token is kept
    let out = anon.fails(
        1,
        &[
            "login",
            "-method=userpass",
            "username=bob",
            "password=not-the-pw-77",
        ],
    );
    assert!(!out.stderr.contains("not-the-pw-77"), "{out:?}");
    assert_eq!(std::fs::read_to_string(anon.token_file()).unwrap(), stored);
}

#[test]
fn usage_and_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = dev();
    let c = Cli::new(&s, dir.path());

    // usage errors: 2, before any request
    for args in [
        &["nope"][..],
        &["kv", "put", "secret/x"][..],
        &["kv", "get"][..],
        &["kv", "get", "-format=yaml", "secret/x"][..],
        &["kv", "get", "-no-such-flag", "secret/x"][..],
        &["token", "revoke"][..],
        &["write", "secret/data/x"][..],
        &["read", "-address=not a url", "secret/x"][..],
    ] {
        let out = c.run(args);
        assert_eq!(out.code, 2, "coffer {args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: {out:?}");
    }
    // help is not an error
    let out = c.run(&["kv", "get", "-help"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Usage"), "{out:?}");

    // server errors: 1, with the server's message and without the values sent
    c.ok(&["kv", "put", "secret/cas", "pw=first-value"]);
    let out = c.fails(
        1,
        &["kv", "put", "-cas=7", "secret/cas", "pw=cas-secret-value"],
    );
    assert!(out.stderr.contains("check-and-set"), "{out:?}");
    assert!(out.stderr.contains("Code: 400"), "{out:?}");
    assert!(!out.stderr.contains("cas-secret-value"), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    let plain = c.ok(&["token", "create", "-policy=default", "-field=token"]);
    let limited = c.with_token(Some(&plain));
    let out = limited.fails(1, &["kv", "get", "secret/cas"]);
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    assert!(!out.stderr.contains("first-value"), "{out:?}");
    assert!(!out.stderr.contains(&plain), "{out:?}");
    let out = limited.fails(1, &["write", "secret/data/cas", "pw=write-secret-value"]);
    assert!(out.stderr.contains("permission denied"), "{out:?}");
    assert!(!out.stderr.contains("write-secret-value"), "{out:?}");
    // an unreachable server
    let out = c.fails(
        1,
        &["kv", "get", "-address=http://127.0.0.1:9", "secret/cas"],
    );
    assert!(out.stderr.contains("127.0.0.1:9"), "{out:?}");
}
