//! Dev mode's Azure credential: an AppRole method at `auth/azure-apps/` (the token endpoints'
//! method in dev mode), a `dev-azure` policy
//! allowing everything under `secret/` (not root), and a role `dev-azure` bound to it whose
//! role_id / secret_id are printed as the environment azure-identity reads (the client-secret
//! recipe and the App Service managed-identity one).

use super::dev_aws::call;
use anyhow::{anyhow, bail};
use coffer_core::request::{Operation, Request};
use coffer_core::Core;
use serde_json::{json, Value};

pub const DEV_AZURE_MOUNT: &str = "azure-apps";
pub const DEV_AZURE_ROLE: &str = "dev-azure";
pub const DEV_AZURE_POLICY: &str = "dev-azure";

const DEV_AZURE_POLICY_HCL: &str = r#"# Dev mode's Azure AppRole: everything under secret/, nothing else.
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
"#;

/// The dev flags for the role's credentials.
#[derive(Debug, Clone, Default)]
pub struct DevAzureArgs {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// Refuse a half-given pair before anything starts.
pub fn check_args(args: &DevAzureArgs) -> anyhow::Result<()> {
    if args.client_id.is_some() != args.client_secret.is_some() {
        bail!("-dev-azure-client-id and -dev-azure-client-secret are given together");
    }
    Ok(())
}

/// The dev role's credentials.
pub struct DevAzure {
    pub role_id: String,
    pub secret_id: zeroize::Zeroizing<String>,
}

/// Set up the method, the policy and the role, and issue a secret_id.
pub async fn setup(
    core: &Core,
    root: &str,
    args: &DevAzureArgs,
    mount: &str,
) -> anyhow::Result<DevAzure> {
    call(
        core,
        root,
        &format!("sys/policy/{DEV_AZURE_POLICY}"),
        json!({ "policy": DEV_AZURE_POLICY_HCL }),
    )
    .await?;
    call(
        core,
        root,
        &format!("sys/auth/{mount}"),
        json!({"type": "approle", "description": "AppRole (dev mode's Azure credential)"}),
    )
    .await?;
    // an hour: the SDKs renew a token with less than five minutes left
    call(
        core,
        root,
        &format!("auth/{mount}/role/{DEV_AZURE_ROLE}"),
        json!({"token_policies": [DEV_AZURE_POLICY], "token_ttl": "1h", "token_max_ttl": "24h"}),
    )
    .await?;
    if let Some(id) = &args.client_id {
        call(
            core,
            root,
            &format!("auth/{mount}/role/{DEV_AZURE_ROLE}/role-id"),
            json!({ "role_id": id }),
        )
        .await?;
    }
    let role = core
        .handle(
            Request::new(
                Operation::Read,
                format!("auth/{mount}/role/{DEV_AZURE_ROLE}/role-id"),
            )
            .with_token(root),
        )
        .await
        .map_err(|e| anyhow!("dev setup (role-id): {e}"))?;
    let role_id = role
        .data
        .as_ref()
        .and_then(|d| d.get("role_id"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("dev setup: the role has no role_id"))?
        .to_string();
    let secret = match &args.client_secret {
        Some(s) => {
            call(
                core,
                root,
                &format!("auth/{mount}/role/{DEV_AZURE_ROLE}/custom-secret-id"),
                json!({ "secret_id": s }),
            )
            .await?
        }
        None => {
            call(
                core,
                root,
                &format!("auth/{mount}/role/{DEV_AZURE_ROLE}/secret-id"),
                json!({}),
            )
            .await?
        }
    };
    let secret_id = secret
        .get("secret_id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("dev setup: no secret_id was issued"))?
        .to_string();
    Ok(DevAzure {
        role_id,
        secret_id: zeroize::Zeroizing::new(secret_id),
    })
}

/// The banner's Azure part for the HTTPS listener at `https_base` (`https://127.0.0.1:8443`).
pub fn banner(https_base: &str, mount: &str, dev: &DevAzure) -> String {
    let q = super::sh_quote;
    let mut out = format!(
        "Azure Key Vault (vault URL {https_base}/; AppRole auth/{mount}/role/\
         {DEV_AZURE_ROLE}, policy {DEV_AZURE_POLICY}: everything under secret/):\n\n"
    );
    for (name, value) in [
        ("AZURE_TENANT_ID", "adfs"),
        ("AZURE_AUTHORITY_HOST", https_base),
        ("AZURE_CLIENT_ID", dev.role_id.as_str()),
        ("AZURE_CLIENT_SECRET", dev.secret_id.as_str()),
    ] {
        out.push_str(&format!("    $ export {name}={}\n", q(value)));
    }
    out.push_str("\nAzure managed identity (App Service) instead of the client secret:\n\n");
    out.push_str(&format!(
        "    $ export IDENTITY_ENDPOINT={}\n",
        q(&format!("{https_base}/msi/token"))
    ));
    out.push_str(&format!(
        "    $ export IDENTITY_HEADER={}\n",
        q(&format!("{}:{}", dev.role_id, dev.secret_id.as_str()))
    ));
    out
}
