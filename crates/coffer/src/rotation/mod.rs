//! Automatic rotation: the scheduler that finds due rotations on every kv v2 mount and drives
//! each run through AWS's four steps (`createSecret`, `setSecret`, `testSecret`,
//! `finishSecret`) with the secret's rotator ([`rotators`]), and rotates the due static roles
//! of every `database` mount (`rotate-role/<name>`).
//!
//! Everything the scheduler does is a core request of Coffer acting on its own behalf
//! (`Credential::Internal`, audited with dialect `internal`, the actor `rotation-scheduler`
//! or `rotation-for-<caller>` when a caller asked for the rotation, and the operation name
//! `rotation.<step>`). The run's state lives in the secret's record (see the kv domain's
//! rotation module), so a run interrupted by a restart is resumed with the same version id;
//! a failed step is retried with backoff from `createSecret` (the steps are idempotent, as
//! AWS requires of rotation functions).

pub mod config;
mod db;
mod rotators;

pub use config::RotationSettings;

use coffer_core::error::CoreError;
use coffer_core::request::{Credential, Dialect, Operation, Request, Response};
use coffer_core::Core;
use coffer_engines::kv::domain::rotation::STEPS;
use coffer_engines::kv::domain::SecretView;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Core requests as Coffer itself.
pub(crate) struct Internal<'a> {
    pub core: &'a Core,
    pub actor: String,
    pub step: &'static str,
}

impl Internal<'_> {
    pub async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Map<String, Value>,
    ) -> Result<Response, CoreError> {
        let mut req = Request::new(op, path);
        req.data = data;
        req.dialect = Dialect::Internal;
        req.credential = Credential::Internal(self.actor.clone());
        req.operation_name = Some(format!("rotation.{}", self.step));
        self.core.handle(req).await
    }

    /// The keys a LIST answers.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, CoreError> {
        let resp = self.call(Operation::List, path, Map::new()).await?;
        Ok(resp
            .data
            .and_then(|d| d.get("keys").cloned())
            .and_then(|k| serde_json::from_value(k).ok())
            .unwrap_or_default())
    }
}

fn object(pairs: Value) -> Map<String, Value> {
    match pairs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The runs this process is driving (`<mount><name>`), so that a slow rotator holds up only
/// its own secret: every due rotation runs in a task of its own.
type Running = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// Start the scheduler; it stops with the process.
pub fn spawn(core: Arc<Core>, settings: Arc<RotationSettings>) {
    coffer_engines::kv::domain::rotation::set_hour_length(settings.hour);
    let running: Running = Arc::default();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(settings.tick()).await;
            // sealed, or an HA standby: only the active node rotates
            if core.active().is_err() {
                continue;
            }
            if let Err(e) = tick(&core, &settings, &running).await {
                tracing::warn!(error = %e, "rotation scheduler: could not look for due rotations");
            }
        }
    });
}

/// The kv v2 mounts and the database mounts (paths with their trailing `/`).
async fn mounts(core: &Core) -> Result<(Vec<String>, Vec<String>), CoreError> {
    let sys = Internal {
        core,
        actor: "rotation-scheduler".into(),
        step: "schedule",
    };
    let resp = sys.call(Operation::Read, "sys/mounts", Map::new()).await?;
    let (mut kv, mut db) = (Vec::new(), Vec::new());
    for (path, m) in resp.data.unwrap_or_default() {
        let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
        let version = m
            .get("options")
            .and_then(|o| o.get("version"))
            .and_then(Value::as_str)
            .unwrap_or("1");
        if kind == "kv-v2" || (kind == "kv" && version == "2") {
            kv.push(path);
        } else if kind == "database" {
            db.push(path);
        }
    }
    Ok((kv, db))
}

/// The due static roles of a database mount, each rotated now (`rotate-role/<name>`).
async fn rotate_static_roles(core: &Core, mount: &str) -> Result<(), CoreError> {
    let sys = Internal {
        core,
        actor: "rotation-scheduler".into(),
        step: "static-role",
    };
    let due = sys.list(&format!("{mount}static-roles-due")).await?;
    for name in due {
        if let Err(e) = sys
            .call(
                Operation::Update,
                &format!("{mount}rotate-role/{name}"),
                Map::new(),
            )
            .await
        {
            tracing::warn!(role = %format!("{mount}{name}"), error = %e, "static role rotation failed");
        }
    }
    Ok(())
}

async fn tick(
    core: &Arc<Core>,
    settings: &Arc<RotationSettings>,
    running: &Running,
) -> Result<(), CoreError> {
    let (kv, db) = mounts(core).await?;
    for mount in db {
        if let Err(e) = rotate_static_roles(core, &mount).await {
            tracing::warn!(%mount, error = %e, "could not rotate the static roles");
        }
    }
    for mount in kv {
        let sys = Internal {
            core,
            actor: "rotation-scheduler".into(),
            step: "schedule",
        };
        let due = sys.list(&format!("{mount}domain/rotations")).await?;
        for name in due {
            let key = format!("{mount}{name}");
            let fresh = running
                .lock()
                .map(|mut r| r.insert(key.clone()))
                .unwrap_or(false);
            if !fresh {
                continue; // this process is running it already
            }
            let (core, settings, running, mount) = (
                core.clone(),
                settings.clone(),
                running.clone(),
                mount.clone(),
            );
            tokio::spawn(async move {
                if let Err(e) = run(&core, &settings, &mount, &name).await {
                    tracing::warn!(secret = %key, error = %e, "rotation failed");
                }
                if let Ok(mut r) = running.lock() {
                    r.remove(&key);
                }
            });
        }
    }
    Ok(())
}

/// Drive the due run of one secret as far as it goes now.
pub async fn run(
    core: &Core,
    settings: &RotationSettings,
    mount: &str,
    name: &str,
) -> Result<(), String> {
    let sched = Internal {
        core,
        actor: "rotation-scheduler".into(),
        step: "start",
    };
    let run_path = format!("{mount}domain/rotation-run/{name}");
    let run = sched
        .call(
            Operation::Update,
            &run_path,
            object(json!({"action": "start"})),
        )
        .await
        .map_err(|e| e.to_string())?;
    let run = run.data.unwrap_or_default();
    let version_id = run
        .get("version_id")
        .and_then(Value::as_str)
        .ok_or("the run has no version id")?
        .to_string();
    let requested_by = run
        .get("requested_by")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let done: Vec<String> = run
        .get("steps_done")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let actor = if requested_by.is_empty() || requested_by == "coffer-rotation-scheduler" {
        "rotation-scheduler".to_string()
    } else {
        format!("rotation-for-{requested_by}")
    };
    let describe = Internal {
        core,
        actor: actor.clone(),
        step: "start",
    }
    .call(
        Operation::Read,
        &format!("{mount}domain/secrets/{name}"),
        Map::new(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let secret: SecretView =
        serde_json::from_value(Value::Object(describe.data.unwrap_or_default()))
            .map_err(|_| "unexpected kv answer".to_string())?;
    let rotator_id = secret
        .rotation
        .as_ref()
        .and_then(|r| r.rotator_id.clone())
        .unwrap_or_default();
    let record = |step: &'static str, outcome: Value| {
        let actor = actor.clone();
        let run_path = run_path.clone();
        let version_id = version_id.clone();
        async move {
            let mut data = object(outcome);
            data.insert("action".into(), json!("record"));
            data.insert("version_id".into(), json!(version_id));
            Internal { core, actor, step }
                .call(Operation::Update, &run_path, data)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let rotator = match rotators::Rotator::resolve(&rotator_id, settings) {
        Ok(r) => r,
        Err(e) => {
            record("createSecret", json!({ "error": e })).await?;
            return Err(e);
        }
    };
    let job = rotators::Job {
        core,
        settings,
        actor: actor.clone(),
        mount,
        name,
        version_id: &version_id,
    };
    let session = match rotator.open(&job).await {
        Ok(s) => s,
        Err(e) => {
            record("createSecret", json!({ "error": e })).await?;
            return Err(e);
        }
    };
    let mut result = Ok(());
    for step in STEPS {
        if done.iter().any(|d| d == step) {
            continue;
        }
        let outcome = match rotator.step(&job, &session, step).await {
            Ok(()) if step == "finishSecret" => json!({ "finished": true }),
            Ok(()) => json!({ "step": step }),
            Err(e) => {
                let e = format!("{step}: {e}");
                result = Err(e.clone());
                json!({ "error": e })
            }
        };
        // a run cancelled meanwhile is no longer recorded: stop (the key still goes below)
        if let Err(e) = record(step, outcome).await {
            result = result.and(Err(e));
        }
        if result.is_err() {
            break;
        }
    }
    rotator.close(&job, session).await;
    result
}
