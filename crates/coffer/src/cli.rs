//! The `coffer` command line, following Vault's CLI conventions: `coffer server` runs the server;
//! the other commands are clients of a running server's Vault-dialect HTTP API.
//!
//! Flags may be written Vault's way (`-format=json`, `-dev`) or with two dashes; see
//! [`argv::rewrite_args`]. Exit codes: 0 success, 1 failure (server or network error), 2 usage
//! error (and, as in Vault, "no value found" and `status` on a sealed server).
//!
//! `-wrap-ttl=DUR` on any client command asks the server to wrap the response in a single-use
//! token (`X-Vault-Wrap-TTL`); the command then prints only `wrap_info`, and `coffer unwrap`
//! reads the response back.
//!
//! Layout: `client` (address/token/TLS and the request helper), `output` (tables, JSON, fields),
//! `data` (`key=value` arguments), and one module per command group.

mod argv;
mod audit;
mod auth;
mod client;
mod data;
mod error;
mod generic;
mod kv;
mod lease;
mod migrate;
mod operator;
mod output;
mod policy;
mod rotate;
mod secrets;
mod token;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use self::client::{env_nonempty, parse_go_bool};
use self::error::{CliError, CliResult, EXIT_FAILURE};

/// The line `coffer version` prints.
pub fn version_line() -> String {
    format!("Coffer v{}", env!("CARGO_PKG_VERSION"))
}

/// Runs the command line and returns the process exit code.
pub fn main_with_args(args: Vec<OsString>) -> i32 {
    let args = argv::rewrite_args(args);
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // Help goes to stdout with code 0; usage errors to stderr with code 2.
            let _ = err.print();
            return err.exit_code();
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", err.message);
            err.code
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "coffer",
    about = "Coffer: a self-hosted secrets manager that speaks Vault's HTTP API",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    /// Print the version and exit
    #[arg(long = "version")]
    version: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server
    Server(ServerCmd),
    /// Read, write and manage key/value secrets
    Kv(kv::KvCmd),
    /// Authenticate and store the token in ~/.coffer-token
    Login(token::LoginCmd),
    /// Create, look up, renew and revoke tokens
    Token(token::TokenCmd),
    /// Manage ACL policies
    Policy(policy::PolicyCmd),
    /// Manage secrets engine mounts
    Secrets(secrets::SecretsCmd),
    /// Manage auth method mounts
    Auth(auth::AuthCmd),
    /// Look up, renew and revoke leases
    Lease(lease::LeaseCmd),
    /// Initialise, unseal, seal and inspect the server
    Operator(operator::OperatorCmd),
    /// Show the seal status (exit code 2 when sealed)
    Status(operator::StatusCmd),
    /// Read any API path
    Read(generic::ReadCmd),
    /// Write data to any API path
    Write(generic::WriteCmd),
    /// List the keys under any API path
    List(generic::ListCmd),
    /// Delete any API path
    Delete(generic::DeleteCmd),
    /// Read a wrapped response with its wrapping token
    Unwrap(generic::UnwrapCmd),
    /// Manage audit devices and verify audit logs
    Audit(audit::AuditCmd),
    /// Rotate kv secrets automatically: start, cancel, show, status
    Rotate(rotate::RotateCmd),
    /// Print the version
    Version,
}

#[derive(Args, Debug)]
struct ServerCmd {
    /// Development mode: in memory, unsealed, with a root token
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = parse_go_bool, value_name = "BOOL")]
    dev: bool,
    /// Root token ID in development mode [env: COFFER_DEV_ROOT_TOKEN_ID, VAULT_DEV_ROOT_TOKEN_ID]
    #[arg(long, value_name = "ID")]
    dev_root_token_id: Option<String>,
    /// Listen address in development mode [env: COFFER_DEV_LISTEN_ADDRESS, VAULT_DEV_LISTEN_ADDRESS]
    #[arg(long, value_name = "ADDR")]
    dev_listen_address: Option<String>,
    /// HTTPS listen address in development mode, with a CA generated at start (default
    /// 127.0.0.1:8443) [env: COFFER_DEV_TLS_LISTEN_ADDRESS]
    #[arg(long, value_name = "ADDR")]
    dev_tls_listen_address: Option<String>,
    /// The access key id of dev mode's AWS key pair (default: generated)
    /// [env: COFFER_DEV_AWS_ACCESS_KEY_ID]
    #[arg(long, value_name = "ID")]
    dev_aws_access_key_id: Option<String>,
    /// The secret of dev mode's AWS key pair, given with its id (default: generated)
    /// [env: COFFER_DEV_AWS_SECRET_ACCESS_KEY]
    #[arg(long, value_name = "SECRET")]
    dev_aws_secret_access_key: Option<String>,
    /// The 12-digit AWS account id dev mode records for ARNs [env: COFFER_DEV_AWS_ACCOUNT_ID]
    #[arg(long, value_name = "NNNNNNNNNNNN")]
    dev_aws_account_id: Option<String>,
    /// The role_id of dev mode's Azure AppRole (AZURE_CLIENT_ID; default: generated)
    /// [env: COFFER_DEV_AZURE_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    dev_azure_client_id: Option<String>,
    /// Its secret_id (AZURE_CLIENT_SECRET), given with the id (default: generated)
    /// [env: COFFER_DEV_AZURE_CLIENT_SECRET]
    #[arg(long, value_name = "SECRET")]
    dev_azure_client_secret: Option<String>,
    /// Also write the dev HTTPS listener's CA certificate to this file (for scripts that set
    /// REQUESTS_CA_BUNDLE / SSL_CERT_FILE) [env: COFFER_DEV_CA_CERT_FILE]
    #[arg(long, value_name = "FILE")]
    dev_ca_cert_file: Option<PathBuf>,
    /// Configuration file or directory (repeatable)
    #[arg(long, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Log level: trace, debug, info, warn or error [env: COFFER_LOG_LEVEL, VAULT_LOG_LEVEL]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn first_env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env_nonempty(n))
}

impl ServerCmd {
    fn into_server_args(self) -> crate::server::ServerArgs {
        crate::server::ServerArgs {
            dev: self.dev,
            dev_root_token_id: self
                .dev_root_token_id
                .or_else(|| first_env(&["COFFER_DEV_ROOT_TOKEN_ID", "VAULT_DEV_ROOT_TOKEN_ID"])),
            dev_listen_address: self
                .dev_listen_address
                .or_else(|| first_env(&["COFFER_DEV_LISTEN_ADDRESS", "VAULT_DEV_LISTEN_ADDRESS"])),
            // Vault has no such listener, hence no VAULT_ variable
            dev_tls_listen_address: self
                .dev_tls_listen_address
                .or_else(|| first_env(&["COFFER_DEV_TLS_LISTEN_ADDRESS"])),
            dev_aws: crate::server::DevAwsArgs {
                access_key_id: self
                    .dev_aws_access_key_id
                    .or_else(|| first_env(&["COFFER_DEV_AWS_ACCESS_KEY_ID"])),
                secret_access_key: self
                    .dev_aws_secret_access_key
                    .or_else(|| first_env(&["COFFER_DEV_AWS_SECRET_ACCESS_KEY"])),
                account_id: self
                    .dev_aws_account_id
                    .or_else(|| first_env(&["COFFER_DEV_AWS_ACCOUNT_ID"])),
            },
            dev_azure: crate::server::DevAzureArgs {
                client_id: self
                    .dev_azure_client_id
                    .or_else(|| first_env(&["COFFER_DEV_AZURE_CLIENT_ID"])),
                client_secret: self
                    .dev_azure_client_secret
                    .or_else(|| first_env(&["COFFER_DEV_AZURE_CLIENT_SECRET"])),
            },
            dev_ca_cert_file: self
                .dev_ca_cert_file
                .or_else(|| first_env(&["COFFER_DEV_CA_CERT_FILE"]).map(PathBuf::from)),
            config: self.config,
            log_level: self
                .log_level
                .or_else(|| first_env(&["COFFER_LOG_LEVEL", "VAULT_LOG_LEVEL"])),
        }
    }
}

fn run(cli: Cli) -> CliResult {
    let Some(command) = cli.command else {
        // Only `-version` gets here: clap prints the help when nothing at all is given.
        output::print_out(&version_line());
        return Ok(0);
    };
    if cli.version {
        output::print_out(&version_line());
        return Ok(0);
    }
    match command {
        Command::Version => {
            output::print_out(&version_line());
            Ok(0)
        }
        Command::Server(cmd) => match crate::server::run(cmd.into_server_args()) {
            Ok(()) => Ok(0),
            Err(err) => Err(CliError::with_code(EXIT_FAILURE, format!("Error: {err:#}"))),
        },
        Command::Kv(cmd) => kv::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Rotate(cmd) => rotate::run(cmd),
        Command::Login(cmd) => token::run_login(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Secrets(cmd) => secrets::run(cmd),
        Command::Auth(cmd) => auth::run(cmd),
        Command::Lease(cmd) => lease::run(cmd),
        Command::Unwrap(cmd) => generic::run_unwrap(cmd),
        Command::Operator(cmd) => operator::run(cmd),
        Command::Status(cmd) => operator::run_status(cmd),
        Command::Read(cmd) => generic::run_read(cmd),
        Command::Write(cmd) => generic::run_write(cmd),
        Command::List(cmd) => generic::run_list(cmd),
        Command::Delete(cmd) => generic::run_delete(cmd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = std::iter::once("coffer")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Cli::try_parse_from(argv::rewrite_args(args))
    }

    fn parsed(args: &[&str]) -> Command {
        match parse(args) {
            Ok(Cli {
                command: Some(command),
                ..
            }) => command,
            Ok(_) => panic!("no command for {args:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn exit_code(args: &[&str]) -> i32 {
        match parse(args) {
            Ok(_) => -1,
            Err(e) => e.exit_code(),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_forms() {
        assert_eq!(
            version_line(),
            format!("Coffer v{}", env!("CARGO_PKG_VERSION"))
        );
        for args in [&["-version"][..], &["--version"][..]] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{e}"));
            assert!(cli.version && cli.command.is_none());
        }
        assert!(matches!(parsed(&["version"]), Command::Version));
    }

    #[test]
    fn server_flags_single_and_double_dash() {
        let Command::Server(cmd) = parsed(&[
            "server",
            "-dev",
            "-dev-root-token-id=root",
            "-dev-listen-address",
            "127.0.0.1:8300",
            "-dev-tls-listen-address=127.0.0.1:8301",
            "-dev-aws-access-key-id=FOOBARKEY",
            "-dev-aws-secret-access-key",
            "s3cr3t",
            "--dev-aws-account-id=123456789012",
            "-config=a.hcl",
            "--config",
            "b.hcl",
            "-log-level=debug",
        ]) else {
            panic!("not server")
        };
        let args = cmd.into_server_args();
        assert!(args.dev);
        assert_eq!(args.dev_root_token_id.as_deref(), Some("root"));
        assert_eq!(args.dev_listen_address.as_deref(), Some("127.0.0.1:8300"));
        assert_eq!(
            args.dev_tls_listen_address.as_deref(),
            Some("127.0.0.1:8301")
        );
        assert_eq!(
            args.config,
            [PathBuf::from("a.hcl"), PathBuf::from("b.hcl")]
        );
        assert_eq!(args.log_level.as_deref(), Some("debug"));
        assert_eq!(args.dev_aws.access_key_id.as_deref(), Some("FOOBARKEY"));
        assert_eq!(args.dev_aws.secret_access_key.as_deref(), Some("s3cr3t"));
        assert_eq!(args.dev_aws.account_id.as_deref(), Some("123456789012"));

        let Command::Server(cmd) = parsed(&["server", "-dev=false", "-config", "x.hcl"]) else {
            panic!("not server")
        };
        assert!(!cmd.dev);
    }

    #[test]
    fn global_client_flags_after_subcommands() {
        let Command::Kv(cmd) = parsed(&[
            "kv",
            "get",
            "-format=json",
            "-address=https://h:8200",
            "-tls-skip-verify",
            "-field=password",
            "-mount=secret",
            "-version=3",
            "-wrap-ttl=5m",
            "foo",
        ]) else {
            panic!("not kv")
        };
        assert_eq!(cmd.client.format.as_deref(), Some("json"));
        assert_eq!(cmd.client.wrap_ttl.as_deref(), Some("5m"));
        assert_eq!(cmd.client.address.as_deref(), Some("https://h:8200"));
        assert_eq!(cmd.client.tls_skip_verify, Some(true));
        assert_eq!(cmd.client.field.as_deref(), Some("password"));
        assert_eq!(cmd.mount.as_deref(), Some("secret"));
        let kv::KvCommand::Get(get) = cmd.command else {
            panic!("not get")
        };
        assert_eq!(get.version, Some(3));
        assert_eq!(get.path, "foo");
    }

    #[test]
    fn kv_subcommands_parse() {
        let Command::Kv(cmd) = parsed(&["kv", "put", "-cas=0", "secret/x", "a=1", "b=@f", "c=-"])
        else {
            panic!("not kv")
        };
        let kv::KvCommand::Put(put) = cmd.command else {
            panic!("not put")
        };
        assert_eq!(put.cas, Some(0));
        assert_eq!(put.data, ["a=1", "b=@f", "c=-"]);

        let Command::Kv(cmd) = parsed(&["kv", "put", "secret/x", "-"]) else {
            panic!("not kv")
        };
        assert!(matches!(cmd.command, kv::KvCommand::Put(p) if p.data == ["-"]));

        let Command::Kv(cmd) = parsed(&["kv", "delete", "-versions=1,2", "secret/x"]) else {
            panic!("not kv")
        };
        assert!(matches!(cmd.command, kv::KvCommand::Delete(d) if d.versions == ["1", "2"]));

        let Command::Kv(cmd) = parsed(&[
            "kv",
            "metadata",
            "put",
            "-max-versions=5",
            "-cas-required=true",
            "-delete-version-after=1h",
            "-custom-metadata=a=b",
            "-custom-metadata=c=d",
            "secret/x",
        ]) else {
            panic!("not kv")
        };
        let kv::KvCommand::Metadata(kv::KvMetadataCommand::Put(put)) = cmd.command else {
            panic!("not metadata put")
        };
        assert_eq!(put.max_versions, Some(5));
        assert_eq!(put.cas_required, Some(true));
        assert_eq!(put.delete_version_after.as_deref(), Some("1h"));
        assert_eq!(put.custom_metadata.len(), 2);

        for args in [
            &["kv", "patch", "-method=rw", "secret/x", "a=b"][..],
            &["kv", "undelete", "-versions=3", "secret/x"][..],
            &["kv", "destroy", "-versions", "3", "secret/x"][..],
            &["kv", "list", "secret/"][..],
            &["kv", "metadata", "get", "secret/x"][..],
            &["kv", "metadata", "delete", "secret/x"][..],
        ] {
            parsed(args);
        }
    }

    #[test]
    fn other_commands_parse() {
        for args in [
            &["operator", "init", "-key-shares=1", "-key-threshold=1"][..],
            &["operator", "init", "-status"][..],
            &["operator", "unseal", "abcd"][..],
            &["operator", "unseal", "-reset"][..],
            &["operator", "seal"][..],
            &["operator", "status"][..],
            &["status", "-format=json"][..],
            &["login", "-no-store", "tok"][..],
            &["login", "-method=userpass", "username=bob"][..],
            &[
                "login",
                "-method=approle",
                "-path=ar",
                "-no-store",
                "role_id=r",
                "secret_id=-",
            ][..],
            &["login", "-token-only", "-wrap-ttl=5m", "tok"][..],
            &[
                "auth",
                "enable",
                "-path=people",
                "-description=d",
                "userpass",
            ][..],
            &["auth", "disable", "people"][..],
            &["auth", "list", "-format=json"][..],
            &["auth", "list", "-detailed"][..],
            &[
                "auth",
                "tune",
                "-default-lease-ttl=1h",
                "-max-lease-ttl=2h",
                "-description=x",
                "people",
            ][..],
            &["lease", "lookup", "auth/token/create/abc"][..],
            &["lease", "renew", "-increment=1h", "auth/token/create/abc"][..],
            &["lease", "revoke", "-prefix", "-force", "auth/token/create"][..],
            &["unwrap"][..],
            &["unwrap", "-field=pw", "-format=json", "wt"][..],
            &["read", "-wrap-ttl=5m", "secret/x"][..],
            &["policy", "write", "web", "-"][..],
            &["policy", "read", "web"][..],
            &["policy", "list"][..],
            &["policy", "delete", "web"][..],
            &[
                "token",
                "create",
                "-policy=a",
                "-policy=b",
                "-ttl=1h",
                "-orphan",
                "-renewable=false",
                "-use-limit=2",
                "-metadata=k=v",
                "-display-name=x",
                "-explicit-max-ttl=2h",
                "-period=1h",
                "-field=token",
            ][..],
            &["token", "lookup"][..],
            &["token", "lookup", "-accessor", "acc"][..],
            &["token", "renew", "-increment=1h"][..],
            &["token", "revoke", "-self"][..],
            &["token", "revoke", "-mode=orphan", "tok"][..],
            &[
                "secrets",
                "enable",
                "-path=kv2",
                "-version=2",
                "-description=d",
                "kv",
            ][..],
            &["secrets", "disable", "kv2"][..],
            &["secrets", "list", "-detailed"][..],
            &[
                "secrets",
                "tune",
                "-max-lease-ttl=1h",
                "-default-lease-ttl=30m",
                "kv2",
            ][..],
            &["read", "secret/x"][..],
            &["write", "sys/x", "a=b"][..],
            &["write", "-force", "sys/rotate"][..],
            &["list", "secret/metadata"][..],
            &["delete", "secret/x"][..],
        ] {
            parsed(args);
        }
        let Command::Token(cmd) = parsed(&["token", "create", "-policy=a,b", "-policy=c"]) else {
            panic!("not token")
        };
        assert!(
            matches!(cmd.command, token::TokenCommand::Create(c) if c.policies == ["a", "b", "c"])
        );
    }

    #[test]
    fn exit_codes_of_parse_failures() {
        assert_eq!(exit_code(&["--help"]), 0);
        assert_eq!(exit_code(&["-help"]), 0);
        assert_eq!(exit_code(&["kv", "get", "-h"]), 0);
        assert_eq!(exit_code(&["-no-such-flag"]), 2);
        assert_eq!(exit_code(&["kv", "get"]), 2);
        assert_eq!(exit_code(&["kv"]), 2);
        assert_eq!(exit_code(&[]), 2);
        assert_eq!(exit_code(&["nope"]), 2);
        assert_eq!(exit_code(&["kv", "put", "secret/x"]), 2);
        assert_eq!(exit_code(&["server", "-dev=maybe"]), 2);
        assert_eq!(exit_code(&["kv", "get", "-version=x", "secret/x"]), 2);
        assert_eq!(exit_code(&["lease", "lookup"]), 2);
        assert_eq!(exit_code(&["auth", "enable"]), 2);
        assert_eq!(exit_code(&["unwrap", "a", "b"]), 2);
    }

    #[test]
    fn main_exit_codes() {
        let run = |args: &[&str]| {
            let args = std::iter::once("coffer")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            main_with_args(args)
        };
        // (Parse failures are covered above; clap prints them outside the test harness' capture.)
        // Usage errors found after parsing are code 2 as well, before any request is made.
        assert_eq!(run(&["kv", "get", "-format=yaml", "secret/x"]), 2);
        assert_eq!(run(&["read", "-address=not-a-url", "secret/x"]), 2);
        assert_eq!(run(&["read", "-wrap-ttl=soon", "secret/x"]), 2);
        assert_eq!(run(&["lease", "revoke", "-force", "x"]), 2);
        // An unreachable server is code 1.
        assert_eq!(run(&["read", "-address=http://127.0.0.1:9", "secret/x"]), 1);
        assert_eq!(
            run(&["kv", "get", "-address=http://127.0.0.1:9", "secret/x"]),
            1
        );
        assert_eq!(run(&["status", "-address=http://127.0.0.1:9"]), 1);
    }
}
