//! Dev-server scenarios: reads, token lookups, AppRole logins and listings, with the
//! read-only policy and (unless said otherwise) a file audit device.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{
    get, measured_row, write_body, Ctx, HALF_PEAK_P99_MS, LIST_DIR, READ_PATH, READ_RATIO_TARGET,
    ROOT, RO_POLICY,
};
use crate::load::{self, MakeReq};
use crate::report::Row;
use crate::server::{self, api, call, Coffer};
use crate::{ceiling, dur};

impl Ctx {
    /// A dev server with the bench secret, the read-only policy and a token holding it.
    pub(super) async fn dev_server(
        &mut self,
        name: &str,
        audit: bool,
    ) -> Result<(Coffer, String, PathBuf)> {
        let dir = self.dir(name)?;
        let mut srv = Coffer::start_dev(&self.bin, &dir, ROOT).await?;
        let addr = srv.addr;
        let r = async {
            api(
                addr,
                "PUT",
                READ_PATH,
                Some(ROOT),
                Some(&json!({"data": crate::secret_data()})),
            )
            .await?;
            if audit {
                server::enable_file_audit(addr, ROOT, &dir.join("audit.log")).await?;
            }
            server::put_policy(addr, ROOT, "bench-ro", RO_POLICY).await?;
            let tok = server::create_token(addr, ROOT, &["bench-ro"]).await?;
            // The token must be able to read, and must not be root.
            api(addr, "GET", READ_PATH, Some(&tok), None).await?;
            let (st, _) = call(
                addr,
                "PUT",
                READ_PATH,
                Some(&tok),
                Some(&json!({"data": {"x": "y"}})),
            )
            .await?;
            if st.is_success() {
                bail!("the read-only token could write: the ACL is not in force");
            }
            Ok::<_, anyhow::Error>(tok)
        }
        .await;
        let tok = srv.explain(r)?;
        Ok((srv, tok, dir))
    }

    pub(super) fn audit_note(dir: &Path, row: &mut Row) -> Result<()> {
        let p = dir.join("audit.log");
        let len = std::fs::metadata(&p)
            .with_context(|| format!("audit log {} missing", p.display()))?
            .len();
        if len == 0 {
            bail!("audit log {} is empty: audit was not on", p.display());
        }
        row.notes.push(format!(
            "file audit on ({:.1} MiB written)",
            len as f64 / 1048576.0
        ));
        row.extra.insert("audit_log_bytes".into(), json!(len));
        Ok(())
    }

    pub(super) async fn kv2_read(&mut self, audit: bool) -> Result<()> {
        self.ensure_ceiling().await?;
        let name = if audit {
            "kv2-read"
        } else {
            "kv2-read-noaudit"
        };
        let (mut srv, tok, dir) = self.dev_server(name, audit).await?;
        let addr = srv.addr;
        let load = self.measured_load();
        let make = get(addr, READ_PATH, &tok);
        let (s, reps, bytes) = self
            .measure(Some(&mut srv), addr, &load, make.clone())
            .await?;
        let peak = s.rps;
        let mut row = measured_row(name, &load, s, reps, bytes);
        self.vs_ceiling(&mut row);
        if audit {
            row.target = Some(format!("ratio >= {READ_RATIO_TARGET}"));
            row.target_met = row.ratio.map(|r| r >= READ_RATIO_TARGET);
            if load.connections != 64 {
                row.notes
                    .push("the target is defined for 64 connections".into());
            }
        } else {
            row.notes.push("no audit device".into());
        }
        row.notes
            .push("non-root token with a read-only policy".into());

        let mut half_row = None;
        let mut ceiling_row = None;
        if audit && peak > 0.0 {
            let rate = peak * 0.5;
            let mut half = load.clone();
            half.rate = Some(rate);
            if half.requests.is_some() {
                half.duration = Some(dur(self.s.duration_s.max(1.0)));
                half.requests = None;
                half.warmup = dur(self.s.warmup_s);
            }
            let (hs, hreps, _) = self.measure(Some(&mut srv), addr, &half, make).await?;
            let mut hr = Row::new("kv2-read@50%");
            hr.connections = Some(half.connections);
            hr.target = Some(format!("p99 < {HALF_PEAK_P99_MS} ms"));
            hr.target_met = Some(hs.p99_ms < HALF_PEAK_P99_MS);
            hr.notes.push(format!(
                "open loop at {rate:.0} req/s (50% of the measured peak); latency from send to full answer"
            ));
            hr.extra.insert("target_rate".into(), json!(rate));
            hr.summary = Some(hs);
            hr.repeats_rps = hreps;
            half_row = Some(hr);
            if self.auto_baseline {
                // The same open-loop pass against the ceiling server: the latency floor of this
                // machine and harness at that rate.
                let c = ceiling::start(ceiling::kv2_like_body())?;
                let cmake = get(c.addr, READ_PATH, ROOT);
                let (cs, creps, _) = self.measure(None, c.addr, &half, cmake).await?;
                drop(c);
                let mut cr = Row::new("ceiling@same-rate");
                cr.connections = Some(half.connections);
                cr.notes.push(format!(
                    "ceiling server, open loop at the kv2-read@50% rate ({rate:.0} req/s): the machine's and harness's own p99 at that rate"
                ));
                cr.summary = Some(cs);
                cr.repeats_rps = creps;
                ceiling_row = Some(cr);
            }
        }
        if audit {
            Self::audit_note(&dir, &mut row)?;
        }
        Self::mem_into(&srv, &mut row);
        if let Some(hr) = half_row.as_mut() {
            Self::mem_into(&srv, hr);
        }
        srv.stop().await?;
        self.push(row);
        if let Some(hr) = half_row {
            self.push(hr);
        }
        if let Some(cr) = ceiling_row {
            self.push(cr);
        }
        Ok(())
    }

    pub(super) async fn token_lookup(&mut self) -> Result<()> {
        self.ensure_ceiling().await?;
        let (mut srv, tok, dir) = self.dev_server("token-lookup", true).await?;
        let addr = srv.addr;
        let load = self.measured_load();
        let make = get(addr, "/v1/auth/token/lookup-self", &tok);
        let (s, reps, bytes) = self.measure(Some(&mut srv), addr, &load, make).await?;
        let mut row = measured_row("token-lookup", &load, s, reps, bytes);
        self.vs_ceiling(&mut row);
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(row);
        Ok(())
    }

    pub(super) async fn approle_login(&mut self) -> Result<()> {
        self.ensure_ceiling().await?;
        let (mut srv, _tok, dir) = self.dev_server("approle-login", true).await?;
        let addr = srv.addr;
        // dev mode mounts auth/approle/ itself since the Azure dialect (its credential); an older
        // server does not
        let auths = srv.explain(api(addr, "GET", "/v1/sys/auth", Some(ROOT), None).await)?;
        let dev_mounted = auths
            .pointer("/data/approle~1/type")
            .or_else(|| auths.pointer("/approle~1/type"))
            .and_then(Value::as_str)
            == Some("approle");
        if !dev_mounted {
            let (st, body) = call(
                addr,
                "POST",
                "/v1/sys/auth/approle",
                Some(ROOT),
                Some(&json!({"type": "approle"})),
            )
            .await?;
            if !st.is_success() {
                srv.stop().await?;
                bail!(
                    "POST /v1/sys/auth/approle: HTTP {st}: {}",
                    load::snippet(&body)
                );
            }
        }
        let setup = async {
            api(
                addr,
                "POST",
                "/v1/auth/approle/role/bench",
                Some(ROOT),
                Some(&json!({"token_policies": ["bench-ro"], "secret_id_num_uses": 0, "token_ttl": "1h"})),
            )
            .await?;
            let v = api(addr, "GET", "/v1/auth/approle/role/bench/role-id", Some(ROOT), None).await?;
            let role_id = server::str_at(&v, "/data/role_id")?.to_string();
            let v = api(addr, "POST", "/v1/auth/approle/role/bench/secret-id", Some(ROOT), None).await?;
            let secret_id = server::str_at(&v, "/data/secret_id")?.to_string();
            let login = json!({"role_id": role_id, "secret_id": secret_id});
            let v = api(addr, "POST", "/v1/auth/approle/login", None, Some(&login)).await?;
            server::str_at(&v, "/auth/client_token")?;
            Ok::<_, anyhow::Error>(Bytes::from(login.to_string()))
        }
        .await;
        let login = srv.explain(setup)?;
        let load = self.measured_load();
        let make: MakeReq = Arc::new(move |_| {
            server::request(addr, "POST", "/v1/auth/approle/login", None, login.clone())
        });
        let (s, reps, bytes) = self.measure(Some(&mut srv), addr, &load, make).await?;
        let mut row = measured_row("approle-login", &load, s, reps, bytes);
        self.vs_ceiling(&mut row);
        if dev_mounted {
            row.notes
                .push("auth/approle/ as dev mode mounts it (role bench added)".into());
        }
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(row);
        Ok(())
    }

    pub(super) async fn list(&mut self) -> Result<()> {
        self.ensure_ceiling().await?;
        let keys = self.s.list_keys;
        let (mut srv, tok, dir) = self.dev_server("list", true).await?;
        let addr = srv.addr;
        let body = write_body(&json!({"v": "0123456789abcdef"}));
        let fill: MakeReq = Arc::new(move |seq| {
            server::request(
                addr,
                "PUT",
                &format!("/v1/secret/data/list/k{seq:06}"),
                Some(ROOT),
                body.clone(),
            )
        });
        let t = Instant::now();
        let r = load::run(addr, &Self::fill_load(keys, self.s.connections), fill).await;
        srv.explain(r)?;
        let fill_s = t.elapsed().as_secs_f64();
        let v = srv.explain(api(addr, "LIST", LIST_DIR, Some(&tok), None).await)?;
        let n = v
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .ok_or_else(|| anyhow!("LIST answer has no data.keys"))?;
        if n as u64 != keys {
            bail!("LIST {LIST_DIR} returned {n} keys, expected {keys}");
        }
        let load = self.measured_load();
        let make = {
            let tok = tok.clone();
            Arc::new(move |_| server::request(addr, "LIST", LIST_DIR, Some(&tok), Bytes::new()))
                as MakeReq
        };
        let (s, reps, bytes) = self.measure(Some(&mut srv), addr, &load, make).await?;
        let mut row = measured_row("list", &load, s, reps, bytes);
        self.vs_ceiling(&mut row);
        row.notes.push(format!(
            "{keys} keys ({bytes}-byte answer), written with {} connections in {fill_s:.1} s",
            self.s.connections
        ));
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(row);
        Ok(())
    }
}
