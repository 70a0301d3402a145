//! `azure-get`: an Azure Key Vault GET secret (`GET /secrets/<name>/?api-version=...` with
//! `Authorization: Bearer <token>`) by a token holding the read-only policy (audit on), measured
//! over TLS on the dev server's HTTPS listener, against a kv v2 read of the same secret by the
//! same token over TLS on the same server; the ratio of the two is the dialect's overhead.

use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use hyper::header::{HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

use super::{get, measured_row, Ctx, READ_PATH, ROOT, RO_POLICY};
use crate::load::{self, Conn, MakeReq, Target, Tls};
use crate::server::{self, api};

/// azure-get ≥ this × kv2-read over TLS (same server, same run).
const AZURE_RATIO_TARGET: f64 = 0.7;
const API_VERSION: &str = "2026-04-01";

/// A Key Vault name (`[0-9a-zA-Z-]{1,127}`) for the kv path `rel`: every other character
/// becomes `-`.
fn azure_name(rel: &str) -> String {
    rel.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(127)
        .collect()
}

impl Ctx {
    pub(super) async fn azure_get(&mut self) -> Result<()> {
        let (mut srv, tok, dir) = self.dev_server("azure-get", true).await?;
        let addr = srv.addr;
        let (tls_addr, ca) = srv.dev_tls().await?;
        let rel = READ_PATH.trim_start_matches("/v1/secret/data/");
        let name = azure_name(rel);
        let kv_path = format!("/v1/secret/data/{name}");
        if name != rel {
            // the bench secret's name is not a Key Vault name: the same payload under one that
            // is, read by both dialects, and bench-ro extended to it (one more exact path)
            let setup = async {
                api(
                    addr,
                    "PUT",
                    &kv_path,
                    Some(ROOT),
                    Some(&json!({"data": crate::secret_data()})),
                )
                .await?;
                let policy = format!(
                    "{RO_POLICY}\npath \"secret/data/{name}\" {{\n  capabilities = [\"read\"]\n}}\n"
                );
                server::put_policy(addr, ROOT, "bench-ro", &policy).await?;
                api(addr, "GET", &kv_path, Some(&tok), None).await?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            srv.explain(setup)?;
        }
        let tls = Tls::new(&ca, &tls_addr.ip().to_string())?;
        let target = Target {
            addr: tls_addr,
            tls: Some(tls),
        };
        let az_path = format!("/secrets/{name}/?api-version={API_VERSION}");
        let make_kv = get(tls_addr, &kv_path, &tok);
        let make_az: MakeReq = {
            let auth = HeaderValue::from_str(&format!("Bearer {tok}"))
                .context("token is not a valid header value")?;
            let path = az_path.clone();
            Arc::new(move |_| {
                let mut req = server::request(tls_addr, "GET", &path, None, Bytes::new())?;
                req.headers_mut().insert(AUTHORIZATION, auth.clone());
                Ok(req)
            })
        };
        // one request of each first, on one TLS connection: both must answer the bench secret
        let probe = async {
            let mut conn = Conn::open(target.clone()).await?;
            let (st, body) = conn.send(make_kv(0)?).await?;
            if !st.is_success() {
                bail!(
                    "GET {kv_path} over TLS: HTTP {st}: {}",
                    load::snippet(&body)
                );
            }
            let (st, body) = conn.send(make_az(0)?).await?;
            let text = String::from_utf8_lossy(&body);
            if st != hyper::StatusCode::OK || !text.contains("\"value\"") {
                bail!(
                    "GET {az_path} over TLS: HTTP {st}: {}",
                    load::snippet(&body)
                );
            }
            let v: Value = serde_json::from_slice(&body)
                .with_context(|| format!("GET {az_path}: answer is not JSON"))?;
            let value = server::str_at(&v, "/value")?;
            let parsed: Value = serde_json::from_str(value)
                .map_err(|e| anyhow!("GET {az_path}: value is not the secret's JSON: {e}"))?;
            if parsed != crate::secret_data() {
                bail!("GET {az_path}: value {value} is not the bench secret");
            }
            Ok(())
        }
        .await;
        if let Err(e) = srv.explain(probe) {
            srv.stop().await?;
            return Err(e);
        }
        let load = self.measured_load();
        let (ks, kreps, kbytes) = self
            .measure(Some(&mut srv), target.clone(), &load, make_kv)
            .await?;
        let (s, reps, bytes) = self.measure(Some(&mut srv), target, &load, make_az).await?;
        let kv_rps = ks.rps;
        let mut kv_row = measured_row("kv2-read-tls (azure-get run)", &load, ks, kreps, kbytes);
        kv_row.notes.push(format!(
            "kv v2 read of {kv_path} over TLS on the azure-get server, the baseline of azure-get"
        ));
        let mut row = measured_row("azure-get", &load, s, reps, bytes);
        if kv_rps > 0.0 {
            let ratio = row.summary.as_ref().map(|s| s.rps / kv_rps);
            row.ratio = ratio;
            row.baseline = Some(format!("kv2-read over TLS {kv_rps:.0} req/s, same server"));
            row.target = Some(format!("ratio >= {AZURE_RATIO_TARGET}"));
            row.target_met = ratio.map(|r| r >= AZURE_RATIO_TARGET);
        }
        row.notes.push(format!(
            "GET /secrets/{name}/ with a bearer token holding the read-only policy, over TLS \
             (keep-alive connections, handshakes before the run); file audit on"
        ));
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(kv_row);
        self.push(row);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(azure_name("bench/app"), "bench-app");
        assert_eq!(azure_name("a_b-C9"), "a-b-C9");
    }
}
