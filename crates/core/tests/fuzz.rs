//! Property tests on arbitrary input for every core parser that takes untrusted bytes: policies
//! (HCL and JSON), durations, request paths and names, and `audit verify`'s input. Each must
//! answer with a client error (the 4xx class) or succeed; none may panic. Cases are bounded so
//! the test command stays fast.

use coffer_core::core::canonical_path;
use coffer_core::error::ErrorCode;
use coffer_core::policy::parse_policy;
use coffer_core::request::Operation;
use coffer_core::util::{parse_duration_str, parse_duration_value, validate_path};
use proptest::prelude::*;
use serde_json::Value;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn is_client_error(code: ErrorCode) -> bool {
    code.is_client_error()
}

/// Text that looks like a policy often enough to get past the first token.
fn policyish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "path",
        "\"secret/*\"",
        "\"a/+/b\"",
        "{",
        "}",
        "[",
        "]",
        "=",
        ",",
        "capabilities",
        "\"read\"",
        "\"deny\"",
        "\"sudo\"",
        "allowed_parameters",
        "denied_parameters",
        "required_parameters",
        "min_wrapping_ttl",
        "max_wrapping_ttl",
        "\"1h\"",
        "\"1e300h\"",
        "1e300",
        "-1",
        "\"*\"",
        "[]",
        "{\"path\":",
        "\"capabilities\":",
        "null",
        "true",
        "\n",
        " ",
        "#",
        "/*",
        "*/",
        "\"\\u0000\"",
        "policy",
        "\"\"",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn policies_from_arbitrary_text(text in "\\PC{0,200}", bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_policy("fuzz", &text);
        let _ = parse_policy("fuzz", &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn policies_from_policy_like_text(text in policyish()) {
        let _ = parse_policy("fuzz", &text);
    }

    #[test]
    fn durations_from_arbitrary_text(s in "\\PC{0,40}", n in any::<f64>(), i in any::<i64>(), u in any::<u64>()) {
        for r in [
            parse_duration_str(&s),
            parse_duration_value(&Value::String(s.clone())),
            parse_duration_value(&serde_json::json!(n)),
            parse_duration_value(&serde_json::json!(i)),
            parse_duration_value(&serde_json::json!(u)),
            parse_duration_str(&format!("{n}s")),
            parse_duration_str(&format!("{u}h")),
        ] {
            match r {
                Ok(d) => prop_assert!(d.as_secs() <= coffer_core::util::MAX_DURATION_SECS),
                Err(e) => prop_assert!(is_client_error(e.code), "{e:?}"),
            }
        }
    }

    #[test]
    fn paths_and_names_from_arbitrary_text(s in "\\PC{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        for p in [s.clone(), lossy, format!("sys/policy/{s}"), format!("sys/policies/acl/{s}")] {
            if let Err(e) = validate_path(&p) {
                prop_assert!(is_client_error(e.code));
            }
            for op in [Operation::Read, Operation::List, Operation::Update] {
                match canonical_path(&p, op) {
                    // canonical is a fixed point
                    Ok(c) => prop_assert_eq!(canonical_path(&c, op).ok(), Some(c.clone())),
                    Err(e) => prop_assert!(is_client_error(e.code)),
                }
            }
        }
        for r in [
            coffer_core::names::policy_name(&s),
            coffer_core::names::object_name("role", &s),
        ] {
            if let Err(e) = r {
                prop_assert!(is_client_error(e.code));
            }
        }
    }

    #[test]
    fn audit_verify_input(files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..3),
                          key in "\\PC{0,70}",
                          lines in prop::collection::vec("\\{\"seq\":[0-9]{1,3},\"prev_hash\":\"[a-f0-9]{0,8}\",\"hash\":\"[a-f0-9]{0,64}\"\\}", 0..5)) {
        let mut named: Vec<(String, Vec<u8>)> = files
            .into_iter()
            .enumerate()
            .map(|(i, b)| (format!("f{i}"), b))
            .collect();
        named.push(("lines".into(), (lines.join("\n") + "\n").into_bytes()));
        for k in [key.as_str(), "00ff", "zz"] {
            let outcome = coffer_core::audit::verify::verify(k, &named, None);
            // garbage never verifies as a chain (an empty set verifies trivially)
            if !named.iter().all(|(_, b)| b.iter().all(|c| c.is_ascii_whitespace())) {
                prop_assert!(!outcome.ok || outcome.entries == 0, "{outcome:?}");
            }
        }
    }
}
