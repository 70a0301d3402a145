//! `coffer lease lookup|renew|revoke`: leases at `sys/leases/*`.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{is_duration, parse_go_bool, Client, ClientOpts};
use super::error::{CliError, CliResult};
use super::generic::print_secret;
use super::output::print_out;

#[derive(Args, Debug)]
#[command(subcommand_required = true, arg_required_else_help = true)]
pub struct LeaseCmd {
    #[command(flatten)]
    pub client: ClientOpts,
    #[command(subcommand)]
    pub command: LeaseCommand,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Show a lease's properties (issue and expire time, TTL, renewable)
    Lookup(LeaseId),
    /// Renew a lease, asking for an extension of -increment
    Renew(LeaseRenew),
    /// Revoke a lease, or with -prefix every lease under a prefix
    Revoke(LeaseRevoke),
}

#[derive(Args, Debug)]
pub struct LeaseId {
    #[arg(value_name = "LEASE_ID")]
    pub lease_id: String,
}

#[derive(Args, Debug)]
pub struct LeaseRenew {
    /// Requested extension of the lease (e.g. 1h); the server may grant less
    #[arg(long, short = 'i', value_name = "DURATION")]
    pub increment: Option<String>,
    #[arg(value_name = "LEASE_ID")]
    pub lease_id: String,
}

#[derive(Args, Debug)]
pub struct LeaseRevoke {
    /// Revoke every lease whose ID starts with the argument (needs sudo)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub prefix: bool,
    /// With -prefix: delete the leases even where revoking them fails (may leave secrets behind)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    pub force: bool,
    #[arg(value_name = "LEASE_ID_OR_PREFIX")]
    pub lease_id: String,
}

fn lease_id(raw: &str) -> Result<String, CliError> {
    let id = raw.trim().trim_start_matches('/');
    if id.is_empty() {
        return Err(CliError::usage("Lease ID must not be empty"));
    }
    Ok(id.to_string())
}

pub fn run(cmd: LeaseCmd) -> CliResult {
    let format = cmd.client.format()?;
    let field = cmd.client.field.as_deref();
    let client = Client::from_opts(&cmd.client)?;
    match cmd.command {
        LeaseCommand::Lookup(args) => {
            let id = lease_id(&args.lease_id)?;
            let secret = client
                .call("PUT", "sys/leases/lookup", Some(&json!({ "lease_id": id })))
                .map_err(|e| e.context(&format!("looking up lease {id}")))?
                .unwrap_or(Value::Null);
            print_secret(&secret, format, field)
        }
        LeaseCommand::Renew(args) => {
            let id = lease_id(&args.lease_id)?;
            let secret = client
                .call("PUT", "sys/leases/renew", Some(&renew_body(&id, &args)?))
                .map_err(|e| e.context(&format!("renewing {id}")))?
                .unwrap_or(Value::Null);
            print_secret(&secret, format, field)
        }
        LeaseCommand::Revoke(args) => revoke(&client, &args),
    }
}

/// `{"lease_id", "increment"}`; the increment is 0 (the lease's default) unless given.
fn renew_body(id: &str, args: &LeaseRenew) -> Result<Value, CliError> {
    let increment = match args.increment.as_deref().map(str::trim) {
        None => json!(0),
        Some(text) if is_duration(text) => json!(text),
        Some(text) => {
            return Err(CliError::usage(format!(
                "Invalid -increment {text:?}: expected a duration such as 3600, 30m or 1h"
            )))
        }
    };
    Ok(json!({ "lease_id": id, "increment": increment }))
}

/// The endpoint and body of `lease revoke`, or a usage error.
fn revoke_request(args: &LeaseRevoke) -> Result<(String, Option<Value>), CliError> {
    let id = lease_id(&args.lease_id)?;
    match (args.prefix, args.force) {
        (false, true) => Err(CliError::usage(
            "Specifying -force requires also specifying -prefix",
        )),
        (true, true) => Ok((format!("sys/leases/revoke-force/{id}"), None)),
        (true, false) => Ok((format!("sys/leases/revoke-prefix/{id}"), None)),
        (false, false) => Ok((
            "sys/leases/revoke".to_string(),
            Some(json!({ "lease_id": id })),
        )),
    }
}

fn revoke(client: &Client, args: &LeaseRevoke) -> CliResult {
    let (path, body) = revoke_request(args)?;
    let id = lease_id(&args.lease_id)?;
    if args.force {
        eprintln!(
            "Warning! Force-removing leases can leave secrets behind that Coffer no longer \
             tracks (and will not revoke)."
        );
    }
    let action = if args.force {
        format!("force revoking leases with prefix {id}")
    } else if args.prefix {
        format!("revoking leases with prefix {id}")
    } else {
        format!("revoking lease {id}")
    };
    client
        .call("PUT", &path, body.as_ref())
        .map_err(|e| e.context(&action))?;
    print_out(&if args.force {
        format!("Success! Force revoked any leases with prefix: {id}")
    } else if args.prefix {
        format!("Success! Revoked any leases with prefix: {id}")
    } else {
        format!("Success! Revoked lease: {id}")
    });
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke_args(id: &str, prefix: bool, force: bool) -> LeaseRevoke {
        LeaseRevoke {
            prefix,
            force,
            lease_id: id.into(),
        }
    }

    #[test]
    fn revoke_endpoints() {
        let req = |a: LeaseRevoke| revoke_request(&a).map_err(|e| e.code);
        assert_eq!(
            req(revoke_args("auth/token/create/abc", false, false)),
            Ok((
                "sys/leases/revoke".to_string(),
                Some(json!({"lease_id": "auth/token/create/abc"}))
            ))
        );
        assert_eq!(
            req(revoke_args("auth/token/create", true, false)),
            Ok((
                "sys/leases/revoke-prefix/auth/token/create".to_string(),
                None
            ))
        );
        assert_eq!(
            req(revoke_args("/auth/token/", true, true)),
            Ok(("sys/leases/revoke-force/auth/token/".to_string(), None))
        );
        assert_eq!(req(revoke_args("x", false, true)), Err(2));
        assert_eq!(req(revoke_args(" ", false, false)), Err(2));
    }

    #[test]
    fn renew_bodies() {
        let args = |inc: Option<&str>| LeaseRenew {
            increment: inc.map(str::to_string),
            lease_id: "l".into(),
        };
        assert_eq!(
            renew_body("l", &args(None)).ok(),
            Some(json!({"lease_id": "l", "increment": 0}))
        );
        assert_eq!(
            renew_body("l", &args(Some("1h"))).ok(),
            Some(json!({"lease_id": "l", "increment": "1h"}))
        );
        assert_eq!(
            renew_body("l", &args(Some("soon"))).err().map(|e| e.code),
            Some(2)
        );
    }
}
