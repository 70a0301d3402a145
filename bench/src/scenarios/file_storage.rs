//! File-storage scenarios: durable writes and the scale run (fill, then restart and first read).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use super::{
    measured_row, write_body, Ctx, SCALE_READY_S, SCALE_RSS_KIB, SCALE_TARGET_COUNT,
    WRITE_RATIO_TARGET,
};
use crate::load::{self, MakeReq, Summary};
use crate::report::Row;
use crate::server::{self, api, call, Coffer};

impl Ctx {
    /// Spawn a config-mode server on `data`, wait, init or unseal, mount kv v2 if new.
    pub(super) async fn file_server(
        &mut self,
        dir: &Path,
        data: &Path,
        tag: &str,
    ) -> Result<(Coffer, String, String)> {
        let (mut srv, _) = Coffer::start_file(&self.bin, dir, data, tag).await?;
        let addr = srv.addr;
        let r = async {
            let (key, root) = server::init(addr).await?;
            server::unseal(addr, &key).await?;
            server::mount_kv2_ready(addr, &root).await?;
            Ok::<_, anyhow::Error>((key, root))
        }
        .await;
        let (key, root) = srv.explain(r)?;
        Ok((srv, key, root))
    }

    pub(super) async fn kv2_write(&mut self) -> Result<()> {
        self.ensure_fsync().await?;
        let dir = self.dir("kv2-write")?;
        let data = dir.join("data");
        let (mut srv, _key, root) = self.file_server(&dir, &data, "kv2-write").await?;
        let addr = srv.addr;
        let body = write_body(&json!({"v": "0123456789abcdef"}));
        let make: MakeReq = Arc::new(move |seq| {
            server::request(
                addr,
                "PUT",
                &format!("/v1/secret/data/w/{seq:09}"),
                Some(&root),
                body.clone(),
            )
        });
        let load = self.measured_load();
        let (s, reps, bytes) = self.measure(Some(&mut srv), addr, &load, make).await?;
        let rps = s.rps;
        let mut row = measured_row("kv2-write", &load, s, reps, bytes);
        if let Some(f) = &self.fsync {
            row.ratio = Some(if f.rate > 0.0 { rps / f.rate } else { 0.0 });
            row.baseline = Some(format!("1/fdatasync {:.0}/s ({:.3} ms)", f.rate, f.mean_ms));
        }
        if let Some(c) = &self.ceiling {
            if c.rps > 0.0 {
                row.notes.push(format!(
                    "{:.2} x ceiling throughput ({:.0} req/s)",
                    rps / c.rps,
                    c.rps
                ));
            }
        }
        row.target = Some(format!("ratio >= {WRITE_RATIO_TARGET}"));
        row.target_met = row.ratio.map(|r| r >= WRITE_RATIO_TARGET);
        row.notes
            .push("storage \"file\", a new path per request, root token, no audit device".into());
        if load.connections != 64 {
            row.notes
                .push("the target is defined for 64 writers".into());
        }
        Self::mem_into(&srv, &mut row);
        srv.stop().await?;
        self.push(row);
        Ok(())
    }

    pub(super) async fn scale(&mut self) -> Result<()> {
        let count = self.s.scale_count;
        let conns = self.s.scale_connections;
        let dir = self.dir("scale")?;
        let data = dir.join("data");
        let (mut srv, key, root) = self.file_server(&dir, &data, "scale-1").await?;
        let addr = srv.addr;
        let body = write_body(&json!({"v": "0123456789abcdef"}));
        let scale_path =
            |seq: u64| format!("/v1/secret/data/s/{:04}/{:03}", seq / 1000, seq % 1000);
        let make: MakeReq = {
            let root = root.clone();
            Arc::new(move |seq| {
                server::request(addr, "PUT", &scale_path(seq), Some(&root), body.clone())
            })
        };
        println!("bench:   writing {count} secrets with {conns} connections ...");
        let r = load::run(addr, &Self::fill_load(count, conns), make).await;
        let r = srv.explain(r)?;
        let ws = Summary::from_run(r);
        let write_mem = srv.mem().ok();
        let stop_s = srv.stop().await?.as_secs_f64();
        drop(srv);
        let data_bytes = dir_size(&data);

        let mut wrow = Row::new("scale-write");
        wrow.connections = Some(conns);
        wrow.notes.push(format!(
            "{count} secrets written; data dir {:.1} MiB; graceful stop took {stop_s:.2} s",
            data_bytes as f64 / 1048576.0
        ));
        if let Some(m) = write_mem {
            wrow.server_peak_rss_kib = Some(m.hwm_kib);
            wrow.server_rss_kib = Some(m.rss_kib);
        }
        if let Some(f) = &self.fsync {
            wrow.ratio = Some(if f.rate > 0.0 { ws.rps / f.rate } else { 0.0 });
            wrow.baseline = Some(format!("1/fdatasync {:.0}/s", f.rate));
        }
        wrow.extra
            .insert("data_dir_bytes".into(), json!(data_bytes));
        wrow.summary = Some(ws);
        self.push(wrow);

        // Restart on the same data: process start -> listening -> unsealed -> first read 200.
        let (mut srv, listen) = Coffer::start_file(&self.bin, &dir, &data, "scale-2").await?;
        let addr = srv.addr;
        let r = server::unseal(addr, &key).await;
        srv.explain(r)?;
        let unsealed = srv.spawned_at.elapsed();
        let last = scale_path(count.saturating_sub(1));
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            srv.check_alive()?;
            let (st, b) = srv.explain(call(addr, "GET", &last, Some(&root), None).await)?;
            if st.is_success() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "first read {last} still fails 600 s after start: HTTP {st}: {}",
                    load::snippet(&b)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ready = srv.spawned_at.elapsed();
        let mem = srv.mem()?;
        // Spot-check that the data survived.
        for i in 0..20u64 {
            let seq = i * count / 20;
            srv.explain(api(addr, "GET", &scale_path(seq), Some(&root), None).await)?;
        }
        srv.stop().await?;

        let mut row = Row::new("scale-restart");
        row.connections = Some(1);
        let ready_s = ready.as_secs_f64();
        row.notes.push(format!(
            "{count} secrets: listening after {:.3} s, unsealed after {:.3} s, first read 200 after {ready_s:.3} s; RSS {:.1} MiB (peak {:.1} MiB) at that point",
            listen.as_secs_f64(),
            unsealed.as_secs_f64(),
            mem.rss_kib as f64 / 1024.0,
            mem.hwm_kib as f64 / 1024.0,
        ));
        row.server_peak_rss_kib = Some(mem.hwm_kib);
        row.server_rss_kib = Some(mem.rss_kib);
        row.extra.insert("count".into(), json!(count));
        row.extra
            .insert("listening_s".into(), json!(listen.as_secs_f64()));
        row.extra
            .insert("unsealed_s".into(), json!(unsealed.as_secs_f64()));
        row.extra.insert("ready_s".into(), json!(ready_s));
        row.extra.insert(
            "write_peak_rss_kib".into(),
            json!(write_mem.map(|m| m.hwm_kib)),
        );
        let write_peak = write_mem.map(|m| m.hwm_kib).unwrap_or(0);
        row.notes.push(format!(
            "peak RSS of the server that wrote them: {:.1} MiB (the RSS target counts both processes)",
            write_peak as f64 / 1024.0
        ));
        let peak = mem.hwm_kib.max(write_peak);
        let ok = ready_s < SCALE_READY_S && peak < SCALE_RSS_KIB;
        row.target = Some(format!("ready < {SCALE_READY_S} s & RSS < 512 MiB at 1M"));
        if count >= SCALE_TARGET_COUNT {
            row.target_met = Some(ok);
        } else {
            row.notes.push(format!(
                "the target is defined for {SCALE_TARGET_COUNT} secrets; this run had {count} (would be {})",
                if ok { "met" } else { "missed" }
            ));
        }
        self.push(row);
        Ok(())
    }
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
