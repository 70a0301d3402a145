//! Tools any valid caller may use, whatever its dialect or policies (they reveal nothing
//! stored):
//!
//! | path | operation | answers |
//! |---|---|---|
//! | `sys/tools/password` | update | `password`: a random password ([`crate::password`]; parameters `length`, `exclude_characters`, `exclude_numbers`, `exclude_punctuation`, `exclude_uppercase`, `exclude_lowercase`, `include_space`, `require_each_included_type`) |
//! | `sys/internal/whoami` | read | the caller: `display_name`, `policies`, `accessor`, `metadata` |

use crate::error::{CoreError, Result};
use crate::params::{bool_param, int_param, str_param};
use crate::password::{generate, PasswordRules};
use crate::request::{Operation, Response};
use crate::token::TokenEntry;
use serde_json::{json, Map, Value};

pub(crate) const PASSWORD: &str = "tools/password";
pub(crate) const WHOAMI: &str = "internal/whoami";

pub(crate) fn owns(rest: &str) -> bool {
    rest == PASSWORD || rest == WHOAMI
}

pub(crate) fn dispatch(
    rest: &str,
    op: Operation,
    d: &Map<String, Value>,
    caller: Option<&TokenEntry>,
) -> Result<Response> {
    match (rest, op) {
        (PASSWORD, Operation::Update) => {
            let mut rules = PasswordRules::default();
            if let Some(n) = int_param(d, "length")? {
                rules.length = u32::try_from(n)
                    .map_err(|_| CoreError::invalid("length must be between 1 and 4096"))?;
            }
            if let Some(x) = str_param(d, "exclude_characters")? {
                rules.exclude_characters = x.to_string();
            }
            for (key, flag) in [
                ("exclude_numbers", &mut rules.exclude_numbers),
                ("exclude_punctuation", &mut rules.exclude_punctuation),
                ("exclude_uppercase", &mut rules.exclude_uppercase),
                ("exclude_lowercase", &mut rules.exclude_lowercase),
                ("include_space", &mut rules.include_space),
                (
                    "require_each_included_type",
                    &mut rules.require_each_included_type,
                ),
            ] {
                if let Some(b) = bool_param(d, key)? {
                    *flag = b;
                }
            }
            let password = generate(&rules)?;
            Ok(Response::from_value(
                json!({ "password": password.as_str() }),
            ))
        }
        (WHOAMI, Operation::Read) => {
            let caller = caller.ok_or_else(CoreError::unauthenticated)?;
            Ok(Response::from_value(json!({
                "display_name": caller.display_name,
                "policies": caller.policies,
                "accessor": caller.accessor,
                "metadata": caller.meta,
            })))
        }
        _ => Err(CoreError::unsupported_operation()),
    }
}
