//! Secret names and ARNs.
//!
//! A secret's name is its path in the kv mount (`prod/db` is Vault's `secret/data/prod/db`).
//! Names follow AWS's rules (1–512 characters of `A–Z a–z 0–9 / _ + = . @ -`) and, because they
//! are paths, have no empty, `.` or `..` segment (no leading, trailing or doubled `/`).
//!
//! ARNs are `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<suffix>`: the region of the
//! request, the access key's account, and 6 characters derived from the secret's id, which
//! changes when a secret is deleted and created again (so an old ARN never names the new
//! secret). A `SecretId` may be the name, the full ARN, or a partial ARN (without the suffix).

use super::error::AwsError;

/// Longest name.
pub const MAX_NAME: usize = 512;
/// Longest `SecretId` (an ARN).
pub const MAX_SECRET_ID: usize = 2048;

const SUFFIX_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Check a name for `CreateSecret` (and any `SecretId` that is not an ARN).
pub fn validate_name(name: &str) -> Result<(), AwsError> {
    let chars_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if name.is_empty() || name.len() > MAX_NAME || !chars_ok {
        return Err(AwsError::validation(
            "Invalid name. A secret name has 1 to 512 characters: letters, digits and any of \
             / _ + = . @ -",
        ));
    }
    if name
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(AwsError::validation(
            "Invalid name. In Coffer a secret name is a path: it cannot start or end with /, \
             contain //, or have a . or .. segment.",
        ));
    }
    Ok(())
}

/// The 6-character ARN suffix of a secret id.
pub fn suffix(secret_id: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret_id.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

pub fn arn(region: &str, account: &str, name: &str, secret_id: &str) -> String {
    format!(
        "arn:aws:secretsmanager:{region}:{account}:secret:{name}-{}",
        suffix(secret_id)
    )
}

/// What a `SecretId` may name: a name, and the ARN suffix the secret must have (full ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub suffix: Option<String>,
    /// The account an ARN names (`None` for a plain name).
    pub account: Option<String>,
}

impl Candidate {
    fn named(name: &str) -> Self {
        Candidate {
            name: name.to_string(),
            suffix: None,
            account: None,
        }
    }

    /// Whether the secret with this id, seen by a caller of `account`, is the one meant.
    pub fn accepts(&self, secret_id: &str, account: &str) -> bool {
        self.suffix
            .as_deref()
            .is_none_or(|s| s == suffix(secret_id))
            && self.account.as_deref().is_none_or(|a| a == account)
    }
}

/// The secrets a `SecretId` may name, most specific first: a name is itself; an ARN ending in
/// `-XXXXXX` is first the full ARN of `<name>` with that suffix, then the partial ARN of the
/// whole rest.
pub fn candidates(secret_id: &str) -> Result<Vec<Candidate>, AwsError> {
    if secret_id.is_empty() || secret_id.len() > MAX_SECRET_ID {
        return Err(AwsError::validation(
            "1 validation error detected: Value at 'secretId' failed to satisfy constraint: \
             Member must have length between 1 and 2048",
        ));
    }
    let Some(rest) = secret_id.strip_prefix("arn:") else {
        validate_name(secret_id).map_err(|_| not_found())?;
        return Ok(vec![Candidate::named(secret_id)]);
    };
    // aws:secretsmanager:<region>:<account>:secret:<name>
    let parts: Vec<&str> = rest.splitn(6, ':').collect();
    let [_partition, service, _region, account, "secret", name] = parts.as_slice() else {
        return Err(AwsError::invalid_parameter(
            "The ARN is not a Secrets Manager secret ARN.",
        ));
    };
    if *service != "secretsmanager" {
        return Err(AwsError::invalid_parameter(
            "The ARN is not a Secrets Manager secret ARN.",
        ));
    }
    let mut out = Vec::new();
    if let Some((base, sfx)) = name.rsplit_once('-') {
        if sfx.len() == 6
            && sfx.bytes().all(|b| b.is_ascii_alphanumeric())
            && validate_name(base).is_ok()
        {
            out.push(Candidate {
                name: base.to_string(),
                suffix: Some(sfx.to_string()),
                account: Some(account.to_string()),
            });
        }
    }
    if validate_name(name).is_ok() {
        out.push(Candidate {
            account: Some(account.to_string()),
            ..Candidate::named(name)
        });
    }
    if out.is_empty() {
        return Err(not_found());
    }
    Ok(out)
}

fn not_found() -> AwsError {
    AwsError::not_found(super::error::NO_SUCH_SECRET)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "prod/db-password", "a+b=c.d@e_f", &"x".repeat(512)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/./b",
            "../a",
            "a b",
            "a:b",
            "ä",
            &"x".repeat(513),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arns() {
        let id = "6f1c2d1e-0000-4000-8000-000000000000";
        let a = arn("eu-west-1", "123456789012", "prod/db", id);
        let sfx = suffix(id);
        assert_eq!(sfx.len(), 6);
        assert!(sfx.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            a,
            format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-{sfx}")
        );
        assert_ne!(suffix("another id"), sfx);
        let c = candidates(&a).unwrap();
        assert_eq!(c[0].name, "prod/db");
        assert!(c[0].accepts(id, "123456789012"));
        assert!(!c[0].accepts("another id", "123456789012"));
        // another account's ARN never names a secret of this one
        assert!(!c[0].accepts(id, "210987654321"));
        assert_eq!(c[1].name, format!("prod/db-{sfx}"));
        let partial = candidates("arn:aws:secretsmanager:us-east-1:1:secret:prod/db").unwrap();
        assert_eq!(
            partial,
            vec![Candidate {
                name: "prod/db".into(),
                suffix: None,
                account: Some("1".into()),
            }]
        );
        // a name whose last part looks like a suffix is tried both ways
        let c = candidates("arn:aws:secretsmanager:us-east-1:1:secret:my-secret").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "my");
        assert_eq!(c[1].name, "my-secret");
        assert!(candidates("arn:aws:s3:::bucket").is_err());
        assert!(candidates("arn:aws:secretsmanager:r:a:secret:").is_err());
        assert_eq!(
            candidates("a b").unwrap_err().code,
            "ResourceNotFoundException"
        );
    }
}
