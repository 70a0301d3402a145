//! `aws-get`: a SigV4-signed Secrets Manager GetSecretValue of the bench secret, by an access key
//! holding the read-only policy (audit on), measured on the same server as a kv v2 read of the
//! same secret by a token with the same policy; the ratio of the two is the dialect's overhead.

use std::sync::Arc;

use anyhow::{bail, Result};
use bytes::Bytes;
use serde_json::json;

use super::{get, measured_row, Ctx, READ_PATH, ROOT};
use crate::load::Conn;
use crate::load::{self, MakeReq};
use crate::server::{self, api};

/// aws-get ≥ this × kv2-read (same server, same run).
const AWS_RATIO_TARGET: f64 = 0.8;
const REGION: &str = "us-east-1";

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref())
}

/// A signed GetSecretValue request (signed once: the server accepts a signature for 15
/// minutes, longer than a measured run, so every request of the run reuses it).
fn signed_get(
    addr: std::net::SocketAddr,
    key_id: &str,
    secret: &str,
    secret_id: &str,
) -> Result<(Bytes, Vec<(&'static str, String)>)> {
    let body = json!({ "SecretId": secret_id }).to_string();
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let host = addr.to_string();
    let target = "secretsmanager.GetSecretValue";
    let ctype = "application/x-amz-json-1.1";
    let signed = "content-type;host;x-amz-date;x-amz-target";
    let canonical = format!(
        "POST\n/\n\ncontent-type:{ctype}\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\n{signed}\n{}",
        sha256_hex(body.as_bytes())
    );
    let scope = format!("{date}/{REGION}/secretsmanager/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let sig = coffer_core::sigv4::sign(secret.as_bytes(), &date, REGION, "secretsmanager", &sts);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={sig}"
    );
    Ok((
        Bytes::from(body),
        vec![
            ("content-type", ctype.to_string()),
            ("x-amz-date", amz_date),
            ("x-amz-target", target.to_string()),
            ("authorization", auth),
        ],
    ))
}

impl Ctx {
    pub(super) async fn aws_get(&mut self) -> Result<()> {
        let (mut srv, tok, dir) = self.dev_server("aws-get", true).await?;
        let addr = srv.addr;
        let key = async {
            let v = api(
                addr,
                "POST",
                "/v1/auth/aws-keys/keys/bench",
                Some(ROOT),
                Some(&json!({"policies": ["bench-ro"]})),
            )
            .await?;
            let id = server::str_at(&v, "/data/access_key_id")?.to_string();
            let secret = server::str_at(&v, "/data/secret_access_key")?.to_string();
            Ok::<_, anyhow::Error>((id, secret))
        }
        .await;
        let (id, secret) = srv.explain(key)?;
        let secret_id = READ_PATH.trim_start_matches("/v1/secret/data/");
        let (body, headers) = signed_get(addr, &id, &secret, secret_id)?;
        let make_aws: MakeReq = {
            let (body, headers) = (body.clone(), headers.clone());
            Arc::new(move |_| {
                let mut req = server::request(addr, "POST", "/", None, body.clone())?;
                for (k, v) in &headers {
                    req.headers_mut().insert(*k, v.parse()?);
                }
                Ok(req)
            })
        };
        // one request first: it must succeed (a signing or ACL mistake fails the scenario)
        let probe = Conn::open(addr).await?.send(make_aws(0)?).await?;
        if !probe.0.is_success() || !String::from_utf8_lossy(&probe.1).contains("SecretString") {
            srv.stop().await?;
            bail!(
                "signed GetSecretValue: HTTP {}: {}",
                probe.0,
                load::snippet(&probe.1)
            );
        }
        let load = self.measured_load();
        let (ks, kreps, kbytes) = self
            .measure(Some(&mut srv), addr, &load, get(addr, READ_PATH, &tok))
            .await?;
        let (s, reps, bytes) = self.measure(Some(&mut srv), addr, &load, make_aws).await?;
        let kv_rps = ks.rps;
        let mut kv_row = measured_row("kv2-read (aws-get run)", &load, ks, kreps, kbytes);
        kv_row
            .notes
            .push("kv v2 read on the aws-get server, the baseline of aws-get".into());
        let mut row = measured_row("aws-get", &load, s, reps, bytes);
        if kv_rps > 0.0 {
            let ratio = row.summary.as_ref().map(|s| s.rps / kv_rps);
            row.ratio = ratio;
            row.baseline = Some(format!("kv2-read {kv_rps:.0} req/s, same server"));
            row.target = Some(format!("ratio >= {AWS_RATIO_TARGET}"));
            row.target_met = ratio.map(|r| r >= AWS_RATIO_TARGET);
        }
        row.notes.push(
            "signed GetSecretValue by an access key with the read-only policy; file audit on"
                .into(),
        );
        Self::audit_note(&dir, &mut row)?;
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(kv_row);
        self.push(row);
        Ok(())
    }
}
