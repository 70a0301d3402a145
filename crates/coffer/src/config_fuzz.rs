//! Property tests on arbitrary configuration files: `load_config` answers an error that names
//! the problem, or a configuration; it never panics.

use crate::server::load_config;
use proptest::prelude::*;

/// Text that looks like a configuration file often enough to get past the first block.
fn configish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "storage",
        "listener",
        "seal",
        "\"file\"",
        "\"inmem\"",
        "\"tcp\"",
        "\"static\"",
        "{",
        "}",
        "[",
        "]",
        "=",
        ",",
        "path",
        "address",
        "tls_disable",
        "true",
        "\"x\"",
        "1e300",
        "\"1e300h\"",
        "default_lease_ttl",
        "max_lease_ttl",
        "\"768h\"",
        "-1",
        "api_addr",
        "ui",
        "log_level",
        "current_key",
        "\"env://NOPE\"",
        "\"file:///nonexistent\"",
        "\n",
        " ",
        "#",
        "{\"storage\":",
        "null",
        "backend",
        "http_idle_timeout",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_config_files(text in "\\PC{0,200}", like in configish(), json in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        for (i, t) in [text, like].into_iter().enumerate() {
            let f = dir.path().join(format!("c{i}.{}", if json { "json" } else { "hcl" }));
            std::fs::write(&f, &t).unwrap();
            if let Err(e) = load_config(&[f]) {
                let msg = format!("{e:#}");
                prop_assert!(!msg.is_empty());
            }
        }
    }
}
