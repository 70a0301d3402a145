//! Result rows, the human table and machine facts.

use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::load::Summary;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub scenario: String,
    /// "ok", "skipped: ..." or "error: ..."
    pub status: String,
    pub connections: Option<usize>,
    /// Medians over the repeats.
    pub summary: Option<Summary>,
    /// Throughput of each repeat.
    pub repeats_rps: Vec<f64>,
    /// What `ratio` is relative to, e.g. "ceiling 41000 req/s".
    pub baseline: Option<String>,
    pub ratio: Option<f64>,
    pub target: Option<String>,
    pub target_met: Option<bool>,
    /// Server VmHWM (peak RSS) in KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// Server VmRSS at the end, in KiB.
    pub server_rss_kib: Option<u64>,
    pub resp_bytes: Option<usize>,
    pub notes: Vec<String>,
    pub extra: Map<String, Value>,
}

impl Row {
    pub fn new(scenario: &str) -> Row {
        Row {
            scenario: scenario.to_string(),
            status: "ok".to_string(),
            ..Default::default()
        }
    }

    pub fn error(scenario: &str, e: &anyhow::Error) -> Row {
        Row {
            scenario: scenario.to_string(),
            status: format!("error: {e:#}"),
            ..Default::default()
        }
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "-".into())
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The results as a plain-text table (also valid Markdown).
pub fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "conns",
        "requests",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "ratio",
        "baseline",
        "target",
        "peak RSS MiB",
    ];
    let mut lines: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let mut cells = vec![
            r.scenario.clone(),
            r.connections
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
        ];
        match &r.summary {
            Some(s) => cells.extend([
                s.requests.to_string(),
                format!("{:.0}", s.rps),
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.max_ms),
            ]),
            None => cells.extend(std::iter::repeat_n("-".to_string(), 6)),
        }
        cells.push(
            r.ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "-".into()),
        );
        cells.push(r.baseline.clone().unwrap_or_else(|| "-".into()));
        cells.push(match (&r.target, r.target_met) {
            (Some(t), Some(true)) => format!("MET ({t})"),
            (Some(t), Some(false)) => format!("MISSED ({t})"),
            (Some(t), None) => format!("not judged ({t})"),
            (None, _) => "-".into(),
        });
        cells.push(mib(r.server_peak_rss_kib));
        lines.push(cells);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for l in &lines {
        for (i, c) in l.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let fmt = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let mut out = String::new();
    out.push_str(&fmt(&header.map(String::from)));
    out.push('\n');
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", sep.join("-|-")));
    for l in &lines {
        out.push_str(&fmt(l));
        out.push('\n');
    }
    let mut notes = String::new();
    for r in rows {
        if r.status != "ok" {
            notes.push_str(&format!("- {}: {}\n", r.scenario, r.status));
        }
        for n in &r.notes {
            notes.push_str(&format!("- {}: {n}\n", r.scenario));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

pub fn print_table(rows: &[Row]) {
    println!("\n{}", table(rows));
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub tmp_fs: String,
}

pub fn machine_facts(tmp: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        kernel,
        tmp_fs: fs_of(tmp),
    }
}

/// "ext4 (/dev/vda on /)" for the mount that holds `path`.
fn fs_of(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mp = Path::new(f[1]);
        if path.starts_with(mp) {
            let len = f[1].len();
            if best.as_ref().is_none_or(|(b, _)| len >= *b) {
                best = Some((len, format!("{} ({} on {})", f[2], f[0], f[1])));
            }
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_line_per_row() {
        let mut r = Row::new("ceiling");
        r.summary = Some(Summary {
            requests: 10,
            rps: 5.0,
            ..Default::default()
        });
        r.notes.push("hello".into());
        let t = table(&[r, Row::new("kv2-read")]);
        assert_eq!(t.lines().filter(|l| l.starts_with("| ")).count(), 3);
        assert!(t.contains("- ceiling: hello"));
    }
}
