//! Baselines: the fsync rate of the disk and the ceiling of a bare HTTP server.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::{get, measured_row, Baseline, Ctx, Fsync, READ_PATH, ROOT};
use crate::load::Summary;
use crate::report::Row;
use crate::{ceiling, dur};

impl Ctx {
    pub(super) async fn fsync(&mut self) -> Result<()> {
        let dir = self.dir("fsync")?;
        let duration = dur(self.s.duration_s.max(0.5));
        let mut runs = Vec::with_capacity(self.s.repeat);
        for _ in 0..self.s.repeat {
            let dir = dir.clone();
            let r = tokio::task::spawn_blocking(move || fsync_loop(&dir, duration, 1_000_000))
                .await
                .map_err(|e| anyhow!("fsync task failed: {e}"))??;
            runs.push(Summary::from_latencies(r.0, r.1));
        }
        let reps: Vec<f64> = runs.iter().map(|s| s.rps).collect();
        let s = Summary::median(&runs);
        self.fsync = Some(Fsync {
            rate: s.rps,
            mean_ms: s.mean_ms,
        });
        let mut row = Row::new("fsync");
        row.connections = Some(1);
        row.notes.push(format!(
            "4 KiB pwrite + fdatasync in a loop on a preallocated file beside the servers' data: {:.0} fsyncs/s, mean {:.3} ms",
            s.rps, s.mean_ms
        ));
        row.repeats_rps = reps;
        row.summary = Some(s);
        self.push(row);
        Ok(())
    }

    pub(super) async fn ceiling(&mut self) -> Result<()> {
        let body = ceiling::kv2_like_body();
        let srv = ceiling::start(body.clone())?;
        let load = self.measured_load();
        let make = get(srv.addr, READ_PATH, ROOT);
        let (s, reps, bytes) = self.measure(None, srv.addr, &load, make).await?;
        drop(srv);
        self.ceiling = Some(Baseline {
            rps: s.rps,
            connections: load.connections,
        });
        let mut row = measured_row("ceiling", &load, s, reps, bytes);
        row.notes.push(format!(
            "bare hyper server in the bench process (own runtime), fixed {bytes}-byte JSON body"
        ));
        self.push(row);
        Ok(())
    }

    pub(super) async fn ensure_ceiling(&mut self) -> Result<()> {
        if self.ceiling.is_none() && self.auto_baseline {
            self.ceiling().await?;
        }
        Ok(())
    }

    pub(super) async fn ensure_fsync(&mut self) -> Result<()> {
        if self.fsync.is_none() && self.auto_baseline {
            self.fsync().await?;
        }
        Ok(())
    }

    pub(super) fn vs_ceiling(&self, row: &mut Row) {
        if let (Some(c), Some(s)) = (&self.ceiling, &row.summary) {
            row.ratio = Some(if c.rps > 0.0 { s.rps / c.rps } else { 0.0 });
            row.baseline = Some(format!("ceiling {:.0} req/s", c.rps));
            if c.connections != row.connections.unwrap_or(0) {
                row.notes.push(format!(
                    "ceiling was measured with {} connections",
                    c.connections
                ));
            }
        }
    }
}

/// write+fdatasync of a 4 KiB block at rotating offsets of a preallocated 1 MiB file.
fn fsync_loop(dir: &Path, duration: Duration, max_ops: u64) -> Result<(Vec<u64>, Duration)> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let path = dir.join("fsync.bin");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    const BLOCKS: u64 = 256;
    f.write_all(&vec![0u8; (BLOCKS * 4096) as usize])?;
    f.sync_all()?;
    let block = [0xA5u8; 4096];
    for i in 0..5 {
        f.write_all_at(&block, i * 4096)?;
        f.sync_data()?;
    }
    let start = Instant::now();
    let end = start + duration;
    let mut lat = Vec::new();
    let mut i = 0u64;
    while i < max_ops && Instant::now() < end {
        let t0 = Instant::now();
        f.write_all_at(&block, (i % BLOCKS) * 4096)?;
        f.sync_data()?;
        lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
        i += 1;
    }
    let elapsed = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok((lat, elapsed))
}
