//! The rotators: what performs the four steps of a run.
//!
//! - `coffer:password` (built in): a new random value for named JSON fields of the secret
//!   (`coffer:password?fields=api_key,token&length=40&exclude_punctuation=true`; by default
//!   the field `password`, or the whole value when it is not a JSON object), with
//!   GetRandomPassword's rules. Its `setSecret` has nothing to change elsewhere.
//! - `coffer:postgresql-single-user` and the other database rotators ([`super::db`]).
//! - a hook: an `http(s)://` URL (its host must be allowed by the configuration) or a
//!   Lambda-style ARN the configuration maps to one. Each step is a `POST` of AWS's rotation
//!   event (`{"Step", "SecretId", "ClientRequestToken", "RotationToken"}`); the hook does the
//!   step through Coffer's AWS dialect, signing with an access key Coffer issues for this run
//!   only (headers `X-Coffer-Access-Key-Id`, `X-Coffer-Secret-Access-Key`, `X-Coffer-Endpoint`,
//!   `X-Coffer-Region`), allowed to read and write this one secret and deleted when the run
//!   stops. A 2xx answer is success.

use super::{object, Internal, RotationSettings};
use coffer_core::password::{generate, PasswordRules};
use coffer_core::request::Operation;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

/// One run's context.
pub struct Job<'a> {
    pub core: &'a coffer_core::Core,
    pub settings: &'a RotationSettings,
    pub actor: String,
    pub mount: &'a str,
    pub name: &'a str,
    pub version_id: &'a str,
}

impl Job<'_> {
    pub(super) fn internal(&self, step: &'static str) -> Internal<'_> {
        Internal {
            core: self.core,
            actor: self.actor.clone(),
            step,
        }
    }

    pub(super) fn path(&self, collection: &str) -> String {
        format!("{}domain/{collection}/{}", self.mount, self.name)
    }
}

/// The built-in password rotator's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordOptions {
    /// JSON fields to renew; empty = `password` (or the whole value when it is not JSON).
    pub fields: Vec<String>,
    pub rules: PasswordRules,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotator {
    Password(PasswordOptions),
    Database(coffer_engines::database::conn::Engine, super::db::Mode),
    Hook(String),
}

/// What a run holds while it runs: a hook's scoped access key.
pub struct Session {
    key: Option<HookKey>,
}

struct HookKey {
    name: String,
    policy: String,
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
}

fn truthy(v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not true or false")),
    }
}

impl Rotator {
    /// The rotator a secret's rotator id names.
    pub fn resolve(id: &str, settings: &RotationSettings) -> Result<Rotator, String> {
        if let Some(rest) = id.strip_prefix("coffer:") {
            let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
            if let Some((engine, mode)) = super::db::parse(name) {
                return Ok(Rotator::Database(engine, mode));
            }
            return match name {
                "password" => Ok(Rotator::Password(password_options(query)?)),
                other => Err(format!(
                    "coffer:{other} is not a built-in rotator (coffer:password, \
                     coffer:postgresql-single-user, coffer:postgresql-alternating-users, \
                     coffer:mysql-single-user, coffer:mysql-alternating-users)"
                )),
            };
        }
        if id.starts_with("arn:") {
            return settings
                .hooks
                .get(id)
                .map(|u| Rotator::Hook(u.clone()))
                .ok_or_else(|| format!("no hook is configured for {id}"));
        }
        let url = reqwest::Url::parse(id).map_err(|e| format!("{id:?} is not a URL: {e}"))?;
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{id:?} is not an http(s) URL"));
        }
        if !settings.allowed_hosts.contains(&host) {
            return Err(format!(
                "hooks on {host} are not allowed (the configuration's rotation.allowed_hook_hosts)"
            ));
        }
        Ok(Rotator::Hook(id.to_string()))
    }

    /// Set up what the steps need.
    pub async fn open(&self, job: &Job<'_>) -> Result<Session, String> {
        match self {
            Rotator::Password(_) | Rotator::Database(..) => Ok(Session { key: None }),
            Rotator::Hook(_) => Ok(Session {
                key: Some(issue_key(job).await?),
            }),
        }
    }

    /// Take down what [`Self::open`] set up (best effort: logged).
    pub async fn close(&self, job: &Job<'_>, session: Session) {
        if let Some(k) = session.key {
            let sys = job.internal("cleanup");
            let key_path = format!("auth/{}/keys/{}", job.settings.aws_keys_mount, k.name);
            for path in [key_path, format!("sys/policy/{}", k.policy)] {
                if let Err(e) = sys.call(Operation::Delete, &path, Map::new()).await {
                    tracing::warn!(%path, error = %e, "rotation: could not remove the hook's key");
                }
            }
        }
    }

    /// Run one step.
    pub async fn step(
        &self,
        job: &Job<'_>,
        session: &Session,
        step: &'static str,
    ) -> Result<(), String> {
        match self {
            Rotator::Password(opts) => password_step(job, opts, step).await,
            Rotator::Database(engine, mode) => super::db::step(job, *engine, *mode, step).await,
            Rotator::Hook(url) => hook_step(job, session, url, step).await,
        }
    }
}

fn password_options(query: &str) -> Result<PasswordOptions, String> {
    let mut opts = PasswordOptions {
        fields: Vec::new(),
        rules: PasswordRules::default(),
    };
    for (k, v) in coffer_api::common::query_map(Some(query)) {
        let v = v.as_str().unwrap_or("").to_string();
        match k.as_str() {
            "fields" => {
                opts.fields = v
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect()
            }
            "length" => {
                opts.rules.length = v.parse().map_err(|_| format!("length {v:?}"))?;
            }
            "exclude_characters" => opts.rules.exclude_characters = v,
            "exclude_numbers" => opts.rules.exclude_numbers = truthy(&v)?,
            "exclude_punctuation" => opts.rules.exclude_punctuation = truthy(&v)?,
            "exclude_uppercase" => opts.rules.exclude_uppercase = truthy(&v)?,
            "exclude_lowercase" => opts.rules.exclude_lowercase = truthy(&v)?,
            "include_space" => opts.rules.include_space = truthy(&v)?,
            other => return Err(format!("coffer:password has no option {other:?}")),
        }
    }
    // fails early on impossible rules
    generate(&opts.rules).map_err(|e| e.to_string())?;
    Ok(opts)
}

/// A version's text, if the secret has it (`Ok(None)`: no such version).
pub(super) async fn read_text(
    job: &Job<'_>,
    step: &'static str,
    sel: Value,
) -> Result<Option<String>, String> {
    let mut data = object(sel);
    data.insert("as_text".into(), json!(true));
    // the value being replaced may have expired: that is often why it is rotated
    data.insert("even_unusable".into(), json!(true));
    match job
        .internal(step)
        .call(Operation::Read, &job.path("versions"), data)
        .await
    {
        Ok(resp) => Ok(resp
            .data
            .and_then(|d| d.get("value").and_then(Value::as_str).map(str::to_string))),
        Err(e) if e.code == coffer_core::error::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

async fn password_step(
    job: &Job<'_>,
    opts: &PasswordOptions,
    step: &'static str,
) -> Result<(), String> {
    let pending = json!({ "version_id": job.version_id });
    match step {
        "createSecret" => {
            if read_text(job, step, pending.clone()).await?.is_some() {
                return Ok(()); // stored by an earlier attempt
            }
            let current = Zeroizing::new(
                read_text(job, step, json!({ "label": "AWSCURRENT" }))
                    .await?
                    .unwrap_or_default(),
            );
            let new = renew(&current, opts)?;
            put_pending(job, step, &new).await
        }
        // nothing outside Coffer holds an API key's value
        "setSecret" => Ok(()),
        "testSecret" => match read_text(job, step, pending).await? {
            Some(v) if !v.is_empty() => Ok(()),
            _ => Err("the pending version is missing".into()),
        },
        _ => finish(job, step).await,
    }
}

/// `createSecret`'s store: the new value under the run's version id, labelled `AWSPENDING`.
pub(super) async fn put_pending(
    job: &Job<'_>,
    step: &'static str,
    text: &str,
) -> Result<(), String> {
    let data = object(json!({
        "text": text,
        "version_id": job.version_id,
        "staging_labels": ["AWSPENDING"],
    }));
    job.internal(step)
        .call(Operation::Update, &job.path("versions"), data)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The new value: the named fields of a JSON object renewed, or a whole new value.
fn renew(current: &str, opts: &PasswordOptions) -> Result<Zeroizing<String>, String> {
    let fresh = || generate(&opts.rules).map_err(|e| e.to_string());
    match serde_json::from_str::<Value>(current) {
        Ok(Value::Object(mut m)) => {
            let fields = if opts.fields.is_empty() {
                vec!["password".to_string()]
            } else {
                opts.fields.clone()
            };
            for f in fields {
                m.insert(f, Value::from(fresh()?.as_str()));
            }
            Ok(Zeroizing::new(Value::Object(m).to_string()))
        }
        _ if opts.fields.is_empty() => fresh(),
        _ => Err("the secret is not a JSON object, so it has no fields to renew".into()),
    }
}

/// `finishSecret`: `AWSCURRENT` moves to the new version (the old one becomes AWSPREVIOUS).
pub(super) async fn finish(job: &Job<'_>, step: &'static str) -> Result<(), String> {
    let s = job
        .internal(step)
        .call(Operation::Read, &job.path("secrets"), Map::new())
        .await
        .map_err(|e| e.to_string())?;
    let s: coffer_engines::kv::domain::SecretView =
        serde_json::from_value(Value::Object(s.data.unwrap_or_default()))
            .map_err(|_| "unexpected kv answer".to_string())?;
    let holder = s
        .versions
        .iter()
        .find(|v| v.staging_labels.iter().any(|l| l == "AWSCURRENT"))
        .map(|v| v.version_id.clone());
    if holder.as_deref() == Some(job.version_id) {
        return Ok(());
    }
    let mut data = object(json!({ "label": "AWSCURRENT", "to_version_id": job.version_id }));
    if let Some(h) = holder {
        data.insert("from_version_id".into(), json!(h));
    }
    job.internal(step)
        .call(Operation::Update, &job.path("labels"), data)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A policy allowing this one secret, and an access key bound to it.
async fn issue_key(job: &Job<'_>) -> Result<HookKey, String> {
    if job.name.contains(['*', '+', '"', '\n']) {
        return Err("a hook cannot be given a credential for a name with * + or quotes".into());
    }
    // named after the run: a run resumed after a crash replaces the key its first attempt got
    let name = format!("rotation-{}", job.version_id.replace('-', ""));
    let sys = job.internal("start");
    let key_path = format!("auth/{}/keys/{name}", job.settings.aws_keys_mount);
    for stale in [key_path.clone(), format!("sys/policy/{name}")] {
        let _ = sys.call(Operation::Delete, &stale, Map::new()).await;
    }
    let hcl = format!(
        "path \"{m}data/{n}\" {{ capabilities = [\"create\", \"read\", \"update\"] }}\n\
         path \"{m}metadata/{n}\" {{ capabilities = [\"read\", \"update\"] }}\n",
        m = job.mount,
        n = job.name
    );
    sys.call(
        Operation::Update,
        &format!("sys/policy/{name}"),
        object(json!({ "policy": hcl })),
    )
    .await
    .map_err(|e| format!("could not create the hook's policy: {e}"))?;
    let resp = sys
        .call(
            Operation::Update,
            &key_path,
            object(json!({ "policies": [name] })),
        )
        .await;
    let resp = match resp {
        Ok(r) => r.data.unwrap_or_default(),
        Err(e) => {
            let _ = sys
                .call(Operation::Delete, &format!("sys/policy/{name}"), Map::new())
                .await;
            return Err(format!(
                "could not issue the hook's access key (auth/{}): {e}",
                job.settings.aws_keys_mount
            ));
        }
    };
    let field = |k: &str| {
        resp.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(HookKey {
        access_key_id: field("access_key_id"),
        secret_access_key: Zeroizing::new(field("secret_access_key")),
        policy: name.clone(),
        name,
    })
}

async fn hook_step(
    job: &Job<'_>,
    session: &Session,
    url: &str,
    step: &'static str,
) -> Result<(), String> {
    let key = session.key.as_ref().ok_or("the hook has no credential")?;
    let event = json!({
        "Step": step,
        "SecretId": job.name,
        "ClientRequestToken": job.version_id,
        "RotationToken": uuid::Uuid::new_v4().to_string(),
    });
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client
        .post(url)
        .header("X-Coffer-Access-Key-Id", &key.access_key_id)
        .header("X-Coffer-Secret-Access-Key", key.secret_access_key.as_str())
        .header("X-Coffer-Endpoint", &job.settings.endpoint)
        .header("X-Coffer-Region", &job.settings.region)
        .json(&event)
        .send()
        .await
        .map_err(|e| format!("the hook did not answer: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).filter(|c| !c.is_control()).collect();
    Err(format!("the hook answered {status}: {body}"))
}
