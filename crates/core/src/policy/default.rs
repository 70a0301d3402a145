//! The text of the built-in `default` policy.

/// The text of the built-in `default` policy: what every ordinary token may do to and about
/// itself (look itself up, renew and revoke itself, ask its capabilities, use its cubbyhole,
/// response wrapping, hashing, lease lookup and renewal).
pub fn default_policy_text() -> &'static str {
    DEFAULT_POLICY
}

const DEFAULT_POLICY: &str = r#"# Coffer's built-in "default" policy. It may be edited but not deleted.

# A token may read its own properties...
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# ...extend its own lifetime...
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# ...and revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# A token may ask which capabilities it has on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The UI reads the token's combined ACL from here.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Renew a lease given its lease_id (legacy and current endpoints).
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}

# Look up a lease's metadata; the lease id must already be known.
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Every token owns a private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap a value, inspect a wrapping token, unwrap it.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# General-purpose hashing helper.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# Check the status of a control-group request whose accessor the caller holds.
path "sys/control-group/request" {
  capabilities = ["update"]
}

# Authorization endpoint of identity OIDC providers.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}
"#;
