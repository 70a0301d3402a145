//! Vault-style single-dash long flags (`-format=json`, `-dev`) rewritten into the double-dash
//! form clap understands, before clap sees them.

use std::ffi::OsString;

/// Rewrites `-name`, `-name=value` into `--name`, `--name=value`.
///
/// Left alone: the program name, anything after a `--` separator, `--long` flags, single-letter
/// short flags (`-h`), a lone `-` (stdin), negative numbers, and anything whose flag name does not
/// start with an ASCII letter.
pub fn rewrite_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_separator = false;
    for (index, arg) in args.into_iter().enumerate() {
        if index == 0 || after_separator {
            out.push(arg);
            continue;
        }
        match arg.to_str() {
            Some("--") => {
                after_separator = true;
                out.push(arg);
            }
            Some(text) if is_single_dash_long_flag(text) => {
                out.push(OsString::from(format!("-{text}")))
            }
            _ => out.push(arg),
        }
    }
    out
}

fn is_single_dash_long_flag(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    if rest.starts_with('-') {
        return false;
    }
    let name = rest.split_once('=').map_or(rest, |(name, _)| name);
    let mut chars = name.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    first_is_letter && chars.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        let args = args.iter().map(OsString::from).collect();
        rewrite_args(args)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            rewrite(&[
                "coffer",
                "server",
                "-dev",
                "-config=a.hcl",
                "-config",
                "b.hcl"
            ]),
            [
                "coffer",
                "server",
                "--dev",
                "--config=a.hcl",
                "--config",
                "b.hcl"
            ]
        );
        assert_eq!(
            rewrite(&[
                "coffer",
                "kv",
                "get",
                "-format=json",
                "-field=password",
                "secret/x"
            ]),
            [
                "coffer",
                "kv",
                "get",
                "--format=json",
                "--field=password",
                "secret/x"
            ]
        );
        assert_eq!(rewrite(&["coffer", "-version"]), ["coffer", "--version"]);
        assert_eq!(
            rewrite(&["coffer", "server", "-dev-root-token-id=x"]),
            ["coffer", "server", "--dev-root-token-id=x"]
        );
    }

    #[test]
    fn leaves_other_arguments_alone() {
        assert_eq!(
            rewrite(&["coffer", "--format", "json", "-h", "-", "-1", "-1h", "a=-b", "secret/x"]),
            ["coffer", "--format", "json", "-h", "-", "-1", "-1h", "a=-b", "secret/x"]
        );
        // A value after `=` never matters, even when it looks like a flag.
        assert_eq!(rewrite(&["c", "-cas=-1"]), ["c", "--cas=-1"]);
        // The program name is never touched.
        assert_eq!(rewrite(&["-weird-name"]), ["-weird-name"]);
        // Single-letter flag with a value stays a short flag.
        assert_eq!(rewrite(&["c", "-x=1"]), ["c", "-x=1"]);
    }

    #[test]
    fn stops_after_separator() {
        assert_eq!(
            rewrite(&["coffer", "write", "-force", "--", "-odd=value", "-dev"]),
            ["coffer", "write", "--force", "--", "-odd=value", "-dev"]
        );
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments_pass_through() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'-', b'a', 0xff]);
        let out = rewrite_args(vec![OsString::from("c"), raw.clone()]);
        assert_eq!(out[1], raw);
    }
}
