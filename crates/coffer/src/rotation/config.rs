//! The server configuration's `rotation` stanza:
//!
//! ```text
//! rotation {
//!   hook "arn:aws:lambda:us-east-1:123456789012:function:rotate-api-key" {
//!     url = "https://rotator.internal/rotate"    # where that Lambda ARN's steps are sent
//!   }
//!   allowed_hook_hosts = ["rotator.internal"]    # hosts a hook URL given directly may name
//!   allowed_database_hosts = ["db.internal"]     # hosts the database rotators may connect to
//!   aws_keys_mount     = "aws-keys"              # issues each hook run's scoped access key
//!   endpoint           = "https://coffer.internal:8200"   # Coffer's address, told to hooks
//!   region             = "us-east-1"             # the region hooks sign for
//!   hour               = "1h"                    # test setting: how long a schedule hour is
//! }
//! ```

use crate::server::config::{as_string, block_bodies, check_keys, labelled_blocks};
use anyhow::{anyhow, bail};
use coffer_core::util::parse_duration_value;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// How rotations run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationSettings {
    /// Lambda-style ARN → the hook URL its steps are sent to.
    pub hooks: BTreeMap<String, String>,
    /// Hosts that a hook URL given directly as the rotator may name (lowercase). Dev mode
    /// allows loopback; nothing by default, so rotation cannot make Coffer call any host.
    pub allowed_hosts: Vec<String>,
    /// Database hosts the built-in database rotators may connect to (lowercase).
    pub allowed_database_hosts: Vec<String>,
    /// The `aws-access-keys` auth mount that issues each hook run's scoped key.
    pub aws_keys_mount: String,
    /// Coffer's URL as hooks reach it (their `SECRETS_MANAGER_ENDPOINT`).
    pub endpoint: String,
    /// The region hooks sign their requests for.
    pub region: String,
    /// How long an hour of rotation schedules lasts (only tests shorten it).
    pub hour: Duration,
}

impl Default for RotationSettings {
    fn default() -> Self {
        RotationSettings {
            hooks: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            allowed_database_hosts: Vec::new(),
            aws_keys_mount: "aws-keys".into(),
            endpoint: "http://127.0.0.1:8200".into(),
            region: "us-east-1".into(),
            hour: Duration::from_secs(3600),
        }
    }
}

impl RotationSettings {
    /// How often the scheduler looks for due rotations: every 30 s (sooner when schedule hours
    /// are shortened for tests).
    pub fn tick(&self) -> Duration {
        (self.hour / 120).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// Dev mode's: hooks on loopback are allowed.
    pub fn dev() -> Self {
        RotationSettings {
            allowed_hosts: vec!["127.0.0.1".into(), "localhost".into(), "[::1]".into()],
            allowed_database_hosts: vec!["127.0.0.1".into(), "localhost".into(), "::1".into()],
            ..Default::default()
        }
    }

    /// Apply a `rotation` stanza over these settings.
    pub fn merge_stanza(&mut self, v: &Value) -> anyhow::Result<()> {
        for body in block_bodies(v, "rotation")? {
            check_keys(
                "rotation",
                &body,
                &[
                    "hook",
                    "allowed_hook_hosts",
                    "allowed_database_hosts",
                    "aws_keys_mount",
                    "endpoint",
                    "region",
                    "hour",
                ],
            )?;
            if let Some(hooks) = body.get("hook") {
                for (arn, hbody) in labelled_blocks(hooks)? {
                    check_keys(&format!("rotation hook \"{arn}\""), &hbody, &["url"])?;
                    if !arn.starts_with("arn:") {
                        bail!("rotation hook \"{arn}\": hooks are named by Lambda-style ARNs");
                    }
                    let url = hbody
                        .get("url")
                        .ok_or_else(|| anyhow!("rotation hook \"{arn}\" needs a url"))
                        .and_then(|u| as_string(u, "rotation hook url"))?;
                    check_url(&url)?;
                    self.hooks.insert(arn, url);
                }
            }
            if let Some(hosts) = body.get("allowed_hook_hosts") {
                let hosts = hosts
                    .as_array()
                    .ok_or_else(|| anyhow!("rotation.allowed_hook_hosts must be a list"))?;
                for h in hosts {
                    self.allowed_hosts
                        .push(as_string(h, "rotation.allowed_hook_hosts")?.to_ascii_lowercase());
                }
            }
            if let Some(hosts) = body.get("allowed_database_hosts") {
                let hosts = hosts
                    .as_array()
                    .ok_or_else(|| anyhow!("rotation.allowed_database_hosts must be a list"))?;
                for h in hosts {
                    self.allowed_database_hosts.push(
                        as_string(h, "rotation.allowed_database_hosts")?.to_ascii_lowercase(),
                    );
                }
            }
            if let Some(m) = body.get("aws_keys_mount") {
                let m = as_string(m, "rotation.aws_keys_mount")?;
                self.aws_keys_mount = m.trim_matches('/').trim_start_matches("auth/").into();
            }
            if let Some(e) = body.get("endpoint") {
                let e = as_string(e, "rotation.endpoint")?;
                check_url(&e)?;
                self.endpoint = e.trim_end_matches('/').into();
            }
            if let Some(r) = body.get("region") {
                self.region = as_string(r, "rotation.region")?;
            }
            if let Some(h) = body.get("hour") {
                let h = parse_duration_value(h).map_err(|e| anyhow!("rotation.hour: {e}"))?;
                if h.is_zero() || h > Duration::from_secs(3600) {
                    bail!("rotation.hour must be more than 0 and at most 1h");
                }
                self.hour = h;
            }
        }
        Ok(())
    }
}

fn check_url(u: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(u).map_err(|e| anyhow!("{u:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("{u:?} must be an http(s) URL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(hcl: &str) -> anyhow::Result<RotationSettings> {
        let v: Value = hcl::from_str(hcl)?;
        let mut s = RotationSettings::default();
        s.merge_stanza(&v["rotation"])?;
        Ok(s)
    }

    #[test]
    fn the_stanza() {
        let s = stanza(
            r#"rotation {
  hook "arn:aws:lambda:us-east-1:123456789012:function:f" {
    url = "http://127.0.0.1:9000/rotate"
  }
  allowed_hook_hosts = ["Rotator.Internal"]
  aws_keys_mount = "auth/keys/"
  endpoint = "https://coffer.internal:8200/"
  hour = "2s"
}"#,
        )
        .unwrap();
        assert_eq!(
            s.hooks["arn:aws:lambda:us-east-1:123456789012:function:f"],
            "http://127.0.0.1:9000/rotate"
        );
        assert_eq!(s.allowed_hosts, vec!["rotator.internal"]);
        assert_eq!(s.aws_keys_mount, "keys");
        assert_eq!(s.endpoint, "https://coffer.internal:8200");
        assert_eq!(s.hour, Duration::from_secs(2));
        assert_eq!(s.tick(), Duration::from_millis(100));
        assert_eq!(RotationSettings::default().tick(), Duration::from_secs(30));
        for bad in [
            r#"rotation { hook "f" { url = "http://x" } }"#,
            r#"rotation { hook "arn:x" { url = "ftp://x" } }"#,
            r#"rotation { hook "arn:x" {} }"#,
            r#"rotation { hour = "2h" }"#,
            r#"rotation { hours = "1s" }"#,
        ] {
            assert!(stanza(bad).is_err(), "{bad}");
        }
    }
}
