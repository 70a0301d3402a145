//! Dev mode's AWS access key: an `aws-access-keys` auth method at `auth/aws-keys/`, a `dev-aws`
//! policy allowing everything under `secret/` (not root), and one key pair bound to it, printed
//! for SDKs (`AWS_ACCESS_KEY_ID=…`, `AWS_SECRET_ACCESS_KEY=…`).

use anyhow::{anyhow, bail};
use coffer_core::request::{Operation, Request};
use coffer_core::Core;
use serde_json::{json, Value};

/// Where dev mode mounts the method, the policy it binds the key to, and the key's name.
pub const DEV_AWS_MOUNT: &str = "aws-keys";
pub const DEV_AWS_POLICY: &str = "dev-aws";
pub const DEV_AWS_KEY_NAME: &str = "dev";

const DEV_AWS_POLICY_HCL: &str = r#"# Dev mode's AWS access key: everything under secret/, nothing else.
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
"#;

/// The dev flags for the AWS key.
#[derive(Debug, Clone, Default)]
pub struct DevAwsArgs {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub account_id: Option<String>,
}

/// The dev pair: (access key id, secret access key).
pub struct DevAwsKey {
    pub access_key_id: String,
    pub secret_access_key: zeroize::Zeroizing<String>,
}

/// Refuse a half-given pair before anything starts.
pub fn check_args(args: &DevAwsArgs) -> anyhow::Result<()> {
    if args.access_key_id.is_some() != args.secret_access_key.is_some() {
        bail!("-dev-aws-access-key-id and -dev-aws-secret-access-key are given together");
    }
    Ok(())
}

pub(super) async fn call(
    core: &Core,
    root: &str,
    path: &str,
    data: Value,
) -> anyhow::Result<Value> {
    let resp = core
        .handle(
            Request::new(Operation::Update, path)
                .with_token(root)
                .with_data(data),
        )
        .await
        // the error never carries the secret: the engine names parameters, not values
        .map_err(|e| anyhow!("dev setup ({path}): {e}"))?;
    Ok(Value::Object(resp.data.unwrap_or_default()))
}

/// Set up the method, the policy and the pair (the one given, or a generated one).
pub async fn setup(core: &Core, root: &str, args: &DevAwsArgs) -> anyhow::Result<DevAwsKey> {
    call(
        core,
        root,
        &format!("sys/policy/{DEV_AWS_POLICY}"),
        json!({ "policy": DEV_AWS_POLICY_HCL }),
    )
    .await?;
    call(
        core,
        root,
        &format!("sys/auth/{DEV_AWS_MOUNT}"),
        json!({"type": coffer_engines::auth::access_keys::MOUNT_TYPE,
               "description": "AWS access keys (SigV4)"}),
    )
    .await?;
    if let Some(account) = &args.account_id {
        call(
            core,
            root,
            &format!("auth/{DEV_AWS_MOUNT}/config"),
            json!({ "account_id": account }),
        )
        .await?;
    }
    let mut data = json!({ "policies": [DEV_AWS_POLICY] });
    if let (Some(id), Some(secret)) = (&args.access_key_id, &args.secret_access_key) {
        data["access_key_id"] = json!(id);
        data["secret_access_key"] = json!(secret);
    }
    let created = call(
        core,
        root,
        &format!("auth/{DEV_AWS_MOUNT}/keys/{DEV_AWS_KEY_NAME}"),
        data,
    )
    .await?;
    let field = |k: &str| {
        created
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("dev setup: the new AWS key has no {k}"))
    };
    Ok(DevAwsKey {
        access_key_id: field("access_key_id")?,
        secret_access_key: zeroize::Zeroizing::new(field("secret_access_key")?),
    })
}

/// `NAME=value`, the value quoted for a POSIX shell only when it needs it.
pub fn env_line(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+=_.-:@%,".contains(&b));
    if plain {
        format!("{name}={value}")
    } else {
        format!("{name}={}", super::sh_quote(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines() {
        assert_eq!(
            env_line("AWS_ACCESS_KEY_ID", "AKIAABCDEFGHIJ234567"),
            "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJ234567"
        );
        assert_eq!(
            env_line("AWS_SECRET_ACCESS_KEY", "a/b+c="),
            "AWS_SECRET_ACCESS_KEY=a/b+c="
        );
        assert_eq!(env_line("X", "it's $x"), r"X='it'\''s $x'");
        assert!(check_args(&DevAwsArgs {
            access_key_id: Some("A".into()),
            ..Default::default()
        })
        .is_err());
    }
}
