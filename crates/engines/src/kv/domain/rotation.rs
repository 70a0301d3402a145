//! Rotation state of a secret: its settings (rotator, schedule), the run in progress, and the
//! index the scheduler reads to find what is due. Every change here is one commit of the
//! secret's record together with its index entry (`rotation/<name>` below the mount: the time
//! the secret next needs the scheduler), so the schedule survives restarts and a run
//! interrupted by a crash is found and resumed with the same version id.
//!
//! The four steps themselves (`createSecret`, `setSecret`, `testSecret`, `finishSecret`) are
//! driven from outside the engine; they record their progress with [`Domain::record_run`].

use super::super::model::{
    self, format_time, RotationRules, RotationRun, SecretMeta, AWSCURRENT, AWSPENDING,
};
use super::super::store::Change;
use super::labels::detach_label;
use super::ops::{live, no_secret, Domain};
use super::views::SecretView;
use coffer_core::error::{CoreError, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// The prefix of the scheduler's index below a kv mount.
pub const INDEX_PREFIX: &str = "rotation/";
/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// Failed attempts of one run before it is given up (until the next scheduled rotation).
pub const MAX_ATTEMPTS: u32 = 5;

/// How long an "hour" of rotation schedules lasts, in milliseconds (3,600,000). A test setting
/// (`rotation { hour = "1s" }` in the server configuration) shortens it so that schedules fire
/// within a test; it scales every schedule, window and retry delay alike.
static HOUR_MS: AtomicU64 = AtomicU64::new(3_600_000);

/// Set the length of a schedule "hour" (see [`HOUR_MS`]); at least one millisecond.
pub fn set_hour_length(d: std::time::Duration) {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    HOUR_MS.store(ms, Ordering::Relaxed);
}

fn hours(n: f64) -> Duration {
    let ms = HOUR_MS.load(Ordering::Relaxed) as f64 * n;
    Duration::milliseconds(ms.min(i64::MAX as f64 / 2.0) as i64)
}

/// A rotation's settings as asked for (AWS `RotateSecret`, the Vault dialect's rotation path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationConfig {
    /// What rotates it (`coffer:<name>`, an `http(s)://` hook, or a Lambda-style ARN mapped to a
    /// hook by the server's configuration); `None` keeps the stored one.
    pub rotator_id: Option<String>,
    /// `None` keeps the stored rules.
    pub rules: Option<RotationRules>,
    /// Start a run now (AWS's default), rather than at the next scheduled time.
    pub rotate_immediately: bool,
    /// The new version's id (AWS `ClientRequestToken`); a new UUID when absent.
    pub version_id: Option<String>,
    /// Who asked (recorded in the run).
    pub requested_by: String,
}

/// What a step of a run came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// This step is done.
    Step(String),
    /// The run failed at a step, with this error.
    Failed(String),
    /// `finishSecret` is done: the new version must now hold `AWSCURRENT`.
    Finished,
}

/// The index entry of a secret: when the scheduler next needs it (none: only its last error
/// is to be reported).
#[derive(Serialize, Deserialize)]
struct IndexEntry {
    #[serde(default)]
    due: Option<String>,
}

fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// Check rules as AWS does: `AutomaticallyAfterDays` 1–1000, or a `ScheduleExpression`
/// `rate(N hours)` (N ≥ 4) / `rate(N days)` (N ≤ 999) / `cron(...)`; `Duration` `Nh` with
/// 1 ≤ N ≤ 24.
pub fn validate_rules(rules: &RotationRules) -> Result<()> {
    match (&rules.automatically_after_days, &rules.schedule_expression) {
        (Some(_), Some(_)) => {
            return Err(CoreError::invalid(
                "give AutomaticallyAfterDays or ScheduleExpression, not both",
            ))
        }
        (None, None) => {
            return Err(CoreError::invalid(
                "the rotation rules need AutomaticallyAfterDays or ScheduleExpression",
            ))
        }
        (Some(d), None) if !(1..=1000).contains(d) => {
            return Err(CoreError::invalid(
                "AutomaticallyAfterDays must be between 1 and 1000",
            ))
        }
        (_, Some(expr)) if expr.starts_with("cron(") => {
            cron_next(expr, OffsetDateTime::now_utc())?;
        }
        (_, Some(expr)) => {
            rate_hours(expr)?;
        }
        _ => {}
    }
    if let Some(d) = &rules.duration {
        window_hours(d)?;
    }
    Ok(())
}

/// The interval of a `rate(...)` expression, in hours.
fn rate_hours(expr: &str) -> Result<f64> {
    let bad = || {
        CoreError::invalid(format!(
            "ScheduleExpression {expr:?} is not valid: use rate(N hours) with N >= 4, \
             rate(N days) or cron(...)"
        ))
    };
    let inner = expr
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (n, unit) = inner.trim().split_once(' ').ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    match unit.trim() {
        "hour" | "hours" if (4..=999 * 24).contains(&n) => Ok(f64::from(n)),
        "day" | "days" if (1..=999).contains(&n) => Ok(f64::from(n) * 24.0),
        _ => Err(bad()),
    }
}

/// The next time after `from` that an AWS `cron(minutes hours day-of-month month day-of-week
/// year)` expression names, in UTC. Day-of-week is 1–7 = SUN–SAT (or names); one of the two
/// day fields must be `?`; the year must be `*`. Parsed and evaluated by the `croner` crate.
fn cron_next(expr: &str, from: OffsetDateTime) -> Result<OffsetDateTime> {
    let bad =
        |why: &str| CoreError::invalid(format!("ScheduleExpression {expr:?} is not valid: {why}"));
    let inner = expr
        .strip_prefix("cron(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad("use cron(minutes hours day-of-month month day-of-week year)"))?;
    let f: Vec<&str> = inner.split_whitespace().collect();
    if f.len() != 6 {
        return Err(bad("a cron expression has 6 fields"));
    }
    if f[5] != "*" {
        return Err(bad("only * is supported for the year"));
    }
    if (f[2] == "?") == (f[4] == "?") {
        return Err(bad("exactly one of day-of-month and day-of-week must be ?"));
    }
    let pattern = format!("0 {} {} {} {} {}", f[0], f[1], f[2], f[3], f[4]);
    let cron = croner::Cron::new(&pattern)
        .with_seconds_required()
        .with_alternative_weekdays()
        .with_dom_and_dow()
        .parse()
        .map_err(|e| bad(&e.to_string()))?;
    let start = chrono::DateTime::<chrono::Utc>::from_timestamp(from.unix_timestamp(), 0)
        .ok_or_else(|| bad("time out of range"))?;
    let next = cron
        .find_next_occurrence(&start, false)
        .map_err(|e| bad(&e.to_string()))?;
    OffsetDateTime::from_unix_timestamp(next.timestamp()).map_err(|_| bad("time out of range"))
}

/// A window `Nh` (1–24), in hours.
fn window_hours(d: &str) -> Result<f64> {
    let n: u32 = d
        .strip_suffix('h')
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=24).contains(n))
        .ok_or_else(|| CoreError::invalid(format!("Duration {d:?} must be 1h to 24h")))?;
    Ok(f64::from(n))
}

/// When the next rotation after `from` starts: the interval later, at a random point inside
/// the window when there is one.
pub fn next_rotation(rules: &RotationRules, from: OffsetDateTime) -> Result<OffsetDateTime> {
    let (mut at, interval) = match (&rules.automatically_after_days, &rules.schedule_expression) {
        (Some(d), _) => (from + hours(f64::from(*d) * 24.0), f64::from(*d) * 24.0),
        // a cron schedule is on the real clock (the test `hour` does not scale it)
        (None, Some(expr)) if expr.starts_with("cron(") => (cron_next(expr, from)?, 24.0),
        (None, Some(expr)) => {
            let h = rate_hours(expr)?;
            (from + hours(h), h)
        }
        (None, None) => return Err(CoreError::invalid("no rotation schedule")),
    };
    if let Some(w) = &rules.duration {
        let w = window_hours(w)?.min(interval);
        let mut b = [0u8; 8];
        coffer_core::barrier::random_bytes(&mut b)?;
        let frac = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
        at += hours(w * frac);
    }
    Ok(at)
}

/// The next scheduled start after `now` (RFC 3339), when the rules schedule anything.
fn scheduled_after(rules: &RotationRules, now: OffsetDateTime) -> Result<Option<String>> {
    if rules.automatically_after_days.is_none() && rules.schedule_expression.is_none() {
        return Ok(None);
    }
    Ok(Some(format_time(next_rotation(rules, now)?)))
}

/// How long a failed run waits before its next attempt: 30 s doubling, at most an hour (in
/// schedule time).
fn retry_delay(attempts: u32) -> Duration {
    let factor = 2f64.powi(attempts.saturating_sub(1).min(16) as i32);
    hours((30.0 * factor / 3600.0).min(1.0))
}

/// When the scheduler next needs to look at a secret, if ever.
fn due(meta: &SecretMeta) -> Option<String> {
    let r = meta.rotation.as_ref()?;
    match &r.run {
        Some(run) => Some(run.next_attempt_time.clone()),
        None if r.enabled => r.next_rotation_time.clone(),
        None => None,
    }
}

/// Records to put and keys to delete in one commit.
type Writes = (Vec<(String, Zeroizing<Vec<u8>>)>, Vec<String>);

/// The index record of `name` for `meta`: a put while something is due or an error is to be
/// reported, else a delete.
fn index_change(name: &str, meta: &SecretMeta) -> Result<Writes> {
    let key = format!("{INDEX_PREFIX}{name}");
    let failed = meta
        .rotation
        .as_ref()
        .is_some_and(|r| r.last_error.is_some());
    match due(meta) {
        due if due.is_some() || failed => {
            let bytes = serde_json::to_vec(&IndexEntry { due })
                .map_err(|_| CoreError::internal("could not encode the rotation index"))?;
            Ok((vec![(key, Zeroizing::new(bytes))], vec![]))
        }
        _ => Ok((vec![], vec![key])),
    }
}

fn commit(name: &str, meta: SecretMeta, now: OffsetDateTime) -> Result<Change<SecretView>> {
    let (puts, deletes) = index_change(name, &meta)?;
    let view = SecretView::of(&meta, now);
    Ok(Change::Commit {
        meta: Some(meta),
        puts,
        deletes,
        result: view,
    })
}

fn new_run(version_id: String, requested_by: &str, now: OffsetDateTime) -> RotationRun {
    RotationRun {
        version_id,
        started_time: format_time(now),
        requested_by: requested_by.to_string(),
        steps_done: Vec::new(),
        attempts: 0,
        next_attempt_time: format_time(now),
        last_error: None,
    }
}

/// The built-in rotators (`coffer:<name>`).
pub const BUILTIN_ROTATORS: [&str; 5] = [
    "password",
    "postgresql-single-user",
    "postgresql-alternating-users",
    "mysql-single-user",
    "mysql-alternating-users",
];

fn check_rotator(id: &str) -> Result<()> {
    if let Some(rest) = id.strip_prefix("coffer:") {
        let name = rest.split_once('?').map_or(rest, |(n, _)| n);
        if !BUILTIN_ROTATORS.contains(&name) {
            return Err(CoreError::invalid(format!(
                "coffer:{name} is not a built-in rotator (coffer:{})",
                BUILTIN_ROTATORS.join(", coffer:")
            )));
        }
        return Ok(());
    }
    let ok = (id.starts_with("coffer:") && id.len() > 7)
        || id.starts_with("https://")
        || id.starts_with("http://")
        || id.starts_with("arn:");
    if !ok || id.len() > 2048 || id.chars().any(char::is_control) {
        return Err(CoreError::invalid(format!(
            "the rotator {id:?} is not a Coffer rotator (coffer:<name>), a hook URL or a \
             Lambda ARN"
        )));
    }
    Ok(())
}

impl Domain<'_> {
    /// Turn rotation on with `cfg` (merged into the stored settings), starting a run now or
    /// scheduling the next. `InvalidState` while a run is in progress.
    pub async fn configure_rotation(&self, name: &str, cfg: &RotationConfig) -> Result<SecretView> {
        if let Some(id) = &cfg.rotator_id {
            check_rotator(id)?;
        }
        if let Some(r) = &cfg.rules {
            validate_rules(r)?;
        }
        if let Some(v) = &cfg.version_id {
            uuid::Uuid::try_parse(v)
                .map_err(|_| CoreError::invalid("the rotation's version id must be a UUID"))?;
        }
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                meta.upgrade();
                let mut r = meta.rotation.clone().unwrap_or_default();
                if r.run.is_some() {
                    return Err(CoreError::new(
                        ErrorCode::InvalidState,
                        "A previous rotation isn't complete. That rotation will be reattempted.",
                    ));
                }
                if let Some(id) = &cfg.rotator_id {
                    r.rotator_id = Some(id.clone());
                }
                if let Some(rules) = &cfg.rules {
                    r.rules = rules.clone();
                }
                if r.rotator_id.is_none() {
                    return Err(CoreError::invalid(
                        "No rotator is associated with this secret: name one.",
                    ));
                }
                let scheduled = r.rules.automatically_after_days.is_some()
                    || r.rules.schedule_expression.is_some();
                if !scheduled && !cfg.rotate_immediately {
                    return Err(CoreError::invalid(
                        "a rotation that does not start now needs rotation rules",
                    ));
                }
                r.enabled = true;
                if cfg.rotate_immediately {
                    let id = cfg
                        .version_id
                        .clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    if meta.versions.values().any(|v| v.uuid == id) {
                        return Err(CoreError::new(
                            ErrorCode::AlreadyExists,
                            "a version with this id exists already",
                        ));
                    }
                    r.run = Some(new_run(id, &cfg.requested_by, now));
                    r.next_rotation_time = None;
                } else {
                    let from = r
                        .last_rotated_time
                        .as_deref()
                        .and_then(parse_time)
                        .unwrap_or(now);
                    r.next_rotation_time = Some(format_time(next_rotation(&r.rules, from)?));
                }
                meta.rotation = Some(r);
                meta.touch(now);
                commit(name, meta, now)
            })
            .await
    }

    /// Turn rotation off and drop a run in progress (a version it left under `AWSPENDING` keeps
    /// the label, as in AWS).
    pub async fn cancel_rotation(&self, name: &str) -> Result<SecretView> {
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                meta.upgrade();
                let mut r = meta.rotation.clone().unwrap_or_default();
                r.enabled = false;
                r.run = None;
                r.next_rotation_time = None;
                meta.rotation = Some(r);
                meta.touch(now);
                commit(name, meta, now)
            })
            .await
    }

    /// The secrets whose rotation is due at `now` (a run to start or to retry); with `now` =
    /// `None`, every secret the index holds (scheduled, running or failed).
    pub async fn due_rotations(&self, now: Option<OffsetDateTime>) -> Result<Vec<String>> {
        let mut due = Vec::new();
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let prefix = format!("{INDEX_PREFIX}{folder}");
            for k in self.store.view.list(&prefix).await? {
                let rel = format!("{folder}{k}");
                if k.ends_with('/') {
                    folders.push(rel);
                    continue;
                }
                let key = format!("{INDEX_PREFIX}{rel}");
                let entry: Option<IndexEntry> = self.store.view.get_json(&key).await?;
                let Some(entry) = entry else { continue };
                let is_due = match now {
                    None => true,
                    Some(now) => entry
                        .due
                        .as_deref()
                        .and_then(parse_time)
                        .is_some_and(|t| t <= now),
                };
                if is_due {
                    due.push(rel);
                }
            }
        }
        due.sort();
        Ok(due)
    }

    /// The run of a due rotation: the one in progress, or a new scheduled one. `InvalidState`
    /// when nothing is due (the caller lost a race, or the secret was deleted).
    pub async fn start_run(&self, name: &str, requested_by: &str) -> Result<RotationRun> {
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                let mut r = meta.rotation.clone().unwrap_or_default();
                if let Some(run) = &r.run {
                    return Ok(Change::None(run.clone()));
                }
                let scheduled = r
                    .next_rotation_time
                    .as_deref()
                    .and_then(parse_time)
                    .is_some_and(|t| t <= now);
                if !r.enabled || !scheduled {
                    return Err(CoreError::new(
                        ErrorCode::InvalidState,
                        format!("no rotation of {name:?} is due"),
                    ));
                }
                meta.upgrade();
                let run = new_run(uuid::Uuid::new_v4().to_string(), requested_by, now);
                r.run = Some(run.clone());
                r.next_rotation_time = None;
                meta.rotation = Some(r);
                meta.touch(now);
                let (puts, deletes) = index_change(name, &meta)?;
                Ok(Change::Commit {
                    meta: Some(meta),
                    puts,
                    deletes,
                    result: run,
                })
            })
            .await
    }

    /// Record what a step of the run for `version_id` came to. A finished run must have moved
    /// `AWSCURRENT` to the new version; `AWSPENDING` then leaves it, the rotation time is
    /// recorded and the next one scheduled. A failure is retried with backoff, at most
    /// [`MAX_ATTEMPTS`] times. `InvalidState` when that run is no longer current (cancelled).
    pub async fn record_run(
        &self,
        name: &str,
        version_id: &str,
        outcome: &RunOutcome,
    ) -> Result<SecretView> {
        self.store
            .update(self.locks, name, |meta| async move {
                let now = model::now();
                let mut meta = live(meta.ok_or_else(|| no_secret(name))?, now)?;
                meta.upgrade();
                let mut r = meta.rotation.clone().unwrap_or_default();
                let Some(mut run) = r.run.clone().filter(|run| run.version_id == version_id) else {
                    return Err(CoreError::new(
                        ErrorCode::InvalidState,
                        format!("the rotation {version_id} of {name:?} is not in progress"),
                    ));
                };
                let outcome = match outcome {
                    RunOutcome::Finished => {
                        let current = meta.version_with_label(AWSCURRENT);
                        let new = meta
                            .versions
                            .iter()
                            .find(|(_, v)| v.uuid == version_id)
                            .map(|(n, _)| *n);
                        match (current, new) {
                            (Some(c), Some(n)) if c == n => RunOutcome::Finished,
                            _ => RunOutcome::Failed(
                                "finishSecret did not move AWSCURRENT to the new version".into(),
                            ),
                        }
                    }
                    other => other.clone(),
                };
                match outcome {
                    RunOutcome::Step(step) => {
                        if !run.steps_done.contains(&step) {
                            run.steps_done.push(step);
                        }
                        r.run = Some(run);
                    }
                    RunOutcome::Failed(error) => {
                        run.attempts += 1;
                        run.last_error = Some(error.clone());
                        r.last_error = Some(error);
                        if run.attempts >= MAX_ATTEMPTS {
                            // given up until the next scheduled rotation
                            r.run = None;
                            r.next_rotation_time = scheduled_after(&r.rules, now)?;
                        } else {
                            run.steps_done.clear();
                            run.next_attempt_time = format_time(now + retry_delay(run.attempts));
                            r.run = Some(run);
                        }
                    }
                    RunOutcome::Finished => {
                        if let Some(n) = meta.version_with_label(AWSPENDING) {
                            detach_label(&mut meta, AWSPENDING, n, now)?;
                        }
                        carry_expiry(&mut meta, version_id);
                        r.run = None;
                        r.last_error = None;
                        r.last_rotated_time = Some(format_time(now));
                        r.next_rotation_time = scheduled_after(&r.rules, now)?;
                    }
                }
                meta.rotation = Some(r);
                meta.touch(now);
                commit(name, meta, now)
            })
            .await
    }
}

/// An expiry (Azure's `exp`) moves with a rotation: the new version, if it has none, expires as
/// long after its creation as the version it replaces did after its own.
fn carry_expiry(meta: &mut SecretMeta, version_id: &str) {
    let Some(prev) = meta.version_with_label(model::AWSPREVIOUS) else {
        return;
    };
    let lifetime = meta.versions.get(&prev).and_then(|v| {
        let created = parse_time(&v.created_time)?.unix_timestamp();
        v.azure.exp.map(|exp| exp - created).filter(|l| *l > 0)
    });
    let Some(lifetime) = lifetime else {
        return;
    };
    if let Some(new) = meta.versions.values_mut().find(|v| v.uuid == version_id) {
        if new.azure.exp.is_none() {
            let created = parse_time(&new.created_time).map(|t| t.unix_timestamp());
            new.azure.exp = created.map(|c| c + lifetime);
        }
    }
}

/// The index key of a secret (removed with the secret).
pub(super) fn index_key(name: &str) -> String {
    format!("{INDEX_PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: &str) -> OffsetDateTime {
        parse_time(t).unwrap()
    }

    #[test]
    fn cron_schedules_follow_aws() {
        // 10:00 UTC every Monday (AWS: 2 = MON)
        let next = cron_next("cron(0 10 ? * 2 *)", at("2026-12-02T11:00:00Z")).unwrap();
        assert_eq!(format_time(next), "2026-12-07T10:00:00Z");
        let next = cron_next("cron(0 10 ? * MON *)", at("2026-12-02T11:00:00Z")).unwrap();
        assert_eq!(format_time(next), "2026-12-07T10:00:00Z");
        // 16:00 on the 1st and the 15th
        let next = cron_next("cron(0 16 1,15 * ? *)", at("2026-12-02T11:00:00Z")).unwrap();
        assert_eq!(format_time(next), "2026-12-15T16:00:00Z");
        for bad in [
            "cron(0 10 * * 2 *)",
            "cron(0 10 ? * ? *)",
            "cron(0 10 ? * 2 2027)",
            "cron(0 10 ? *)",
            "cron(61 10 ? * 2 *)",
            "cron 0 10 ? * 2 *",
        ] {
            assert!(cron_next(bad, at("2026-12-02T11:00:00Z")).is_err(), "{bad}");
        }
        let rules = RotationRules {
            schedule_expression: Some("cron(0 10 ? * MON *)".into()),
            ..Default::default()
        };
        validate_rules(&rules).unwrap();
        assert_eq!(
            format_time(next_rotation(&rules, at("2026-12-02T11:00:00Z")).unwrap()),
            "2026-12-07T10:00:00Z"
        );
    }
}
