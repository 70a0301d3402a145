//! The `Filters` parameter of ListSecrets and BatchGetSecretValue: parsing and matching.
//!
//! Semantics, after the AWS API reference (`Filter`) and the user guide ("Find secrets"):
//!
//! - every filter must match (AND); within one filter, a secret matches when any of its plain
//!   values matches (OR) and none of its negated values (`!value`) does. A filter with only
//!   negated values matches every secret that none of them matches, including one that lacks
//!   the attribute altogether (a secret without tags passes `tag-key: !env`).
//! - `name`, `tag-key`, `tag-value`, `primary-region` and `owning-service` match by prefix of the
//!   whole attribute, case-sensitively (any tag will do for the tag keys).
//! - `description` is not case-sensitive and works on words: every word of the value must begin
//!   some word of the description (the user guide's "My Description" matches "Description of my
//!   secret"); a plain prefix of the description always matches too.
//! - `all` splits the value into words and matches a secret when any word begins some word of
//!   its name, description, tag keys or values, primary region or owning service, not
//!   case-sensitively (the user guide: `My_Secret` finds secrets with the word "my" or "secret").
//!
//! Words are runs of letters and digits, cut where lowercase turns to uppercase (`myData`),
//! where an uppercase run turns into a capitalized word (`HTTPServer` → `HTTP`, `Server`) and
//! between letters and digits (`db2` → `db`, `2`); everything else separates words.

use serde_json::Value;
use std::collections::BTreeMap;

/// Most filters in one request.
pub const MAX_FILTERS: usize = 10;
/// Most values in one filter.
pub const MAX_VALUES: usize = 10;
/// Longest value, in characters.
pub const MAX_VALUE_LEN: usize = 512;

/// One filter: a key and the values to look for (each may start with `!` to negate it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub key: FilterKey,
    pub values: Vec<String>,
}

/// What a filter looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKey {
    Description,
    Name,
    TagKey,
    TagValue,
    PrimaryRegion,
    OwningService,
    All,
}

impl FilterKey {
    /// The key as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterKey::Description => "description",
            FilterKey::Name => "name",
            FilterKey::TagKey => "tag-key",
            FilterKey::TagValue => "tag-value",
            FilterKey::PrimaryRegion => "primary-region",
            FilterKey::OwningService => "owning-service",
            FilterKey::All => "all",
        }
    }

    /// The key for a wire name (exact spelling, lowercase).
    pub fn from_wire(s: &str) -> Option<FilterKey> {
        Some(match s {
            "description" => FilterKey::Description,
            "name" => FilterKey::Name,
            "tag-key" => FilterKey::TagKey,
            "tag-value" => FilterKey::TagValue,
            "primary-region" => FilterKey::PrimaryRegion,
            "owning-service" => FilterKey::OwningService,
            "all" => FilterKey::All,
            _ => return None,
        })
    }
}

/// What a filter looks at, per secret.
pub struct Candidate<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub tags: &'a BTreeMap<String, String>,
    pub primary_region: Option<&'a str>,
    pub owning_service: Option<&'a str>,
}

/// Parse the `Filters` parameter (`[{"Key": "...", "Values": ["..."]}]`). `null` (the parameter
/// left out) is no filters. `Err` carries a message for an InvalidParameterException: not a
/// list, more than [`MAX_FILTERS`] filters, a missing or unknown key, values missing, empty or
/// more than [`MAX_VALUES`], a value empty, over [`MAX_VALUE_LEN`] characters or with a
/// character outside AWS's set (letters, digits, space and `:_@/+=.-!`). Messages quote at most
/// a short, sanitized excerpt of the input.
pub fn parse(v: &Value) -> Result<Vec<Filter>, String> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err("Filters must be a list of filters".to_string()),
    };
    if items.len() > MAX_FILTERS {
        return Err(format!(
            "Filters has {} filters; at most {MAX_FILTERS} are allowed",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_one(i + 1, item))
        .collect()
}

fn parse_one(n: usize, item: &Value) -> Result<Filter, String> {
    let obj = item
        .as_object()
        .ok_or_else(|| format!("filter {n} must be an object with Key and Values"))?;
    let key = match obj.get("Key") {
        Some(Value::String(k)) => FilterKey::from_wire(k).ok_or_else(|| {
            format!(
                "filter {n} has the unknown key {}; use one of description, name, tag-key, \
                 tag-value, primary-region, owning-service, all",
                excerpt(k)
            )
        })?,
        Some(_) => return Err(format!("the Key of filter {n} must be a string")),
        None => return Err(format!("filter {n} has no Key")),
    };
    let values = match obj.get("Values") {
        Some(Value::Array(vs)) => vs,
        Some(_) => {
            return Err(format!(
                "the Values of filter {n} must be a list of strings"
            ))
        }
        None => return Err(format!("filter {n} has no Values")),
    };
    if values.is_empty() {
        return Err(format!("filter {n} needs at least one value"));
    }
    if values.len() > MAX_VALUES {
        return Err(format!(
            "filter {n} has {} values; at most {MAX_VALUES} are allowed",
            values.len()
        ));
    }
    let values = values
        .iter()
        .map(|v| {
            let s = v
                .as_str()
                .ok_or_else(|| format!("the Values of filter {n} must be strings"))?;
            check_value(n, key, s)?;
            Ok(s.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Filter { key, values })
}

fn check_value(n: usize, key: FilterKey, s: &str) -> Result<(), String> {
    let len = s.chars().count();
    if len > MAX_VALUE_LEN {
        return Err(format!(
            "a value of filter {n} is {len} characters long; at most {MAX_VALUE_LEN} are allowed"
        ));
    }
    if let Some(bad) = s.chars().find(|c| !allowed_char(*c)) {
        return Err(format!(
            "a value of filter {n} contains {}; values may hold only letters, digits, spaces \
             and : _ @ / + = . - !",
            describe_char(bad)
        ));
    }
    let (_, body) = split_negation(s);
    if body.is_empty() {
        return Err(format!("filter {n} has an empty value"));
    }
    if key == FilterKey::All && words(body).is_empty() {
        return Err(format!(
            "a value of filter {n} (all) has no letters or digits to search for"
        ));
    }
    Ok(())
}

/// AWS's value pattern: `^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$` (the optional leading `!` is in the
/// set anyway).
fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c)
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("the character '{c}'")
    } else {
        format!("the character U+{:04X}", u32::from(c))
    }
}

/// At most 64 characters of input, escaped, for an error message.
fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    format!("{out:?}")
}

/// `(negated, value without the leading '!')`.
fn split_negation(v: &str) -> (bool, &str) {
    match v.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, v),
    }
}

/// Whether a secret passes every filter (no filters: every secret passes).
pub fn matches(filters: &[Filter], c: &Candidate<'_>) -> bool {
    filters.iter().all(|f| filter_matches(f, c))
}

fn filter_matches(f: &Filter, c: &Candidate<'_>) -> bool {
    let mut any_plain = false;
    let mut plain_hit = false;
    for v in &f.values {
        let (negated, body) = split_negation(v);
        let hit = value_matches(f.key, body, c);
        if negated {
            if hit {
                return false;
            }
        } else {
            any_plain = true;
            plain_hit |= hit;
        }
    }
    !any_plain || plain_hit
}

fn value_matches(key: FilterKey, v: &str, c: &Candidate<'_>) -> bool {
    match key {
        FilterKey::Name => c.name.starts_with(v),
        FilterKey::TagKey => c.tags.keys().any(|k| k.starts_with(v)),
        FilterKey::TagValue => c.tags.values().any(|t| t.starts_with(v)),
        FilterKey::PrimaryRegion => c.primary_region.is_some_and(|r| r.starts_with(v)),
        FilterKey::OwningService => c.owning_service.is_some_and(|s| s.starts_with(v)),
        FilterKey::Description => description_matches(v, c.description),
        FilterKey::All => all_matches(v, c),
    }
}

fn description_matches(v: &str, description: &str) -> bool {
    if starts_with_ignore_case(description, v) {
        return true;
    }
    let wanted = words(v);
    if wanted.is_empty() {
        return false;
    }
    let have = words(description);
    wanted
        .iter()
        .all(|w| have.iter().any(|h| starts_with_ignore_case(h, w)))
}

fn all_matches(v: &str, c: &Candidate<'_>) -> bool {
    let wanted = words(v);
    if wanted.is_empty() {
        return false;
    }
    let attributes = [c.name, c.description]
        .into_iter()
        .chain(c.tags.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
        .chain(c.primary_region)
        .chain(c.owning_service);
    let mut have: Vec<&str> = Vec::new();
    for a in attributes {
        have.extend(words(a));
    }
    wanted
        .iter()
        .any(|w| have.iter().any(|h| starts_with_ignore_case(h, w)))
}

/// `s` begins with `prefix`, ignoring case (Unicode simple lowercase, char by char).
fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    let mut s = s.chars().flat_map(char::to_lowercase);
    prefix
        .chars()
        .flat_map(char::to_lowercase)
        .all(|p| s.next() == Some(p))
}

/// The words of `s` (see the module documentation), as slices of `s`.
fn words(s: &str) -> Vec<&str> {
    #[derive(Clone, Copy, PartialEq)]
    enum Kind {
        Lower,
        Upper,
        Digit,
        Other,
    }
    fn kind(c: char) -> Kind {
        if c.is_numeric() {
            Kind::Digit
        } else if c.is_uppercase() {
            Kind::Upper
        } else if c.is_alphabetic() {
            Kind::Lower
        } else {
            Kind::Other
        }
    }

    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut prev = Kind::Other;
    let mut iter = s.char_indices().peekable();
    while let Some((pos, c)) = iter.next() {
        let k = kind(c);
        let next = iter.peek().map(|&(_, n)| kind(n));
        let before = std::mem::replace(&mut prev, k);
        if k == Kind::Other {
            if let Some(st) = start.take() {
                out.push(&s[st..pos]);
            }
            continue;
        }
        let Some(st) = start else {
            start = Some(pos);
            continue;
        };
        let prev = before;
        let boundary = match (prev, k) {
            (Kind::Lower, Kind::Upper) => true,
            (Kind::Digit, Kind::Upper | Kind::Lower) | (Kind::Upper | Kind::Lower, Kind::Digit) => {
                true
            }
            // "HTTPServer": the last capital of a run starts the next word.
            (Kind::Upper, Kind::Upper) => next == Some(Kind::Lower),
            _ => false,
        };
        if boundary {
            out.push(&s[st..pos]);
            start = Some(pos);
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Secret {
        name: &'static str,
        description: &'static str,
        tags: BTreeMap<String, String>,
        primary_region: Option<&'static str>,
        owning_service: Option<&'static str>,
    }

    impl Secret {
        fn new(name: &'static str) -> Self {
            Secret {
                name,
                description: "",
                tags: BTreeMap::new(),
                primary_region: None,
                owning_service: None,
            }
        }
        fn desc(mut self, d: &'static str) -> Self {
            self.description = d;
            self
        }
        fn tag(mut self, k: &str, v: &str) -> Self {
            self.tags.insert(k.to_string(), v.to_string());
            self
        }
        fn region(mut self, r: &'static str) -> Self {
            self.primary_region = Some(r);
            self
        }
        fn owner(mut self, o: &'static str) -> Self {
            self.owning_service = Some(o);
            self
        }
        fn candidate(&self) -> Candidate<'_> {
            Candidate {
                name: self.name,
                description: self.description,
                tags: &self.tags,
                primary_region: self.primary_region,
                owning_service: self.owning_service,
            }
        }
    }

    fn f(key: FilterKey, values: &[&str]) -> Filter {
        Filter {
            key,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn hit(s: &Secret, filters: &[Filter]) -> bool {
        matches(filters, &s.candidate())
    }

    fn one(s: &Secret, key: FilterKey, values: &[&str]) -> bool {
        hit(s, &[f(key, values)])
    }

    // ---- parse ----

    #[test]
    fn parses_every_key() {
        let v = json!([
            {"Key": "description", "Values": ["a"]},
            {"Key": "name", "Values": ["b", "!c"]},
            {"Key": "tag-key", "Values": ["d"]},
            {"Key": "tag-value", "Values": ["e"]},
            {"Key": "primary-region", "Values": ["us-east-1"]},
            {"Key": "owning-service", "Values": ["rds"]},
            {"Key": "all", "Values": ["my secret"]},
        ]);
        let parsed = parse(&v).expect("valid");
        let keys: Vec<FilterKey> = parsed.iter().map(|f| f.key).collect();
        assert_eq!(
            keys,
            [
                FilterKey::Description,
                FilterKey::Name,
                FilterKey::TagKey,
                FilterKey::TagValue,
                FilterKey::PrimaryRegion,
                FilterKey::OwningService,
                FilterKey::All
            ]
        );
        assert_eq!(parsed[1].values, ["b", "!c"]);
        for k in keys {
            assert_eq!(FilterKey::from_wire(k.as_str()), Some(k));
        }
    }

    #[test]
    fn null_and_empty_list_are_no_filters() {
        assert_eq!(parse(&Value::Null), Ok(vec![]));
        assert_eq!(parse(&json!([])), Ok(vec![]));
    }

    #[test]
    fn unknown_fields_of_a_filter_are_ignored() {
        let parsed = parse(&json!([{"Key": "name", "Values": ["x"], "Extra": 1}])).expect("ok");
        assert_eq!(parsed, vec![f(FilterKey::Name, &["x"])]);
    }

    fn err(v: Value) -> String {
        parse(&v).expect_err("must be rejected")
    }

    #[test]
    fn rejects_shapes() {
        assert!(err(json!({"Key": "name"})).contains("list"));
        assert!(err(json!("name")).contains("list"));
        assert!(err(json!([1])).contains("object"));
        assert!(err(json!([{"Values": ["x"]}])).contains("no Key"));
        assert!(err(json!([{"Key": 3, "Values": ["x"]}])).contains("Key"));
        assert!(err(json!([{"Key": "name"}])).contains("no Values"));
        assert!(err(json!([{"Key": "name", "Values": "x"}])).contains("list of strings"));
        assert!(err(json!([{"Key": "name", "Values": [1]}])).contains("strings"));
        assert!(err(json!([{"Key": "name", "Values": [null]}])).contains("strings"));
    }

    #[test]
    fn rejects_unknown_and_miscased_keys() {
        for k in ["Name", "tag_key", "tags", "", "arn"] {
            let m = err(json!([{"Key": k, "Values": ["x"]}]));
            assert!(m.contains("unknown key"), "{m}");
        }
    }

    #[test]
    fn counts_are_limited() {
        let filter = json!({"Key": "name", "Values": ["x"]});
        let ten: Vec<Value> = vec![filter.clone(); 10];
        assert_eq!(parse(&Value::Array(ten.clone())).expect("ten").len(), 10);
        let mut eleven = ten;
        eleven.push(filter);
        assert!(err(Value::Array(eleven)).contains("at most 10"));

        let ten_values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        assert!(parse(&json!([{"Key": "name", "Values": ten_values}])).is_ok());
        let eleven_values: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
        assert!(err(json!([{"Key": "name", "Values": eleven_values}])).contains("at most 10"));
        assert!(err(json!([{"Key": "name", "Values": []}])).contains("at least one"));
    }

    #[test]
    fn value_length_is_limited() {
        let ok = "a".repeat(512);
        assert!(parse(&json!([{"Key": "name", "Values": [ok]}])).is_ok());
        let long = "a".repeat(513);
        let m = err(json!([{"Key": "name", "Values": [long]}]));
        assert!(m.contains("513") && m.contains("512"), "{m}");
        assert!(m.len() < 200, "the value is not echoed: {m}");
    }

    #[test]
    fn empty_values_are_rejected() {
        for v in ["", "!"] {
            let m = err(json!([{"Key": "name", "Values": [v]}]));
            assert!(m.contains("empty"), "{m}");
        }
        let m = err(json!([{"Key": "all", "Values": ["-/_"]}]));
        assert!(m.contains("no letters or digits"), "{m}");
        // Punctuation is a fine prefix for the other keys.
        assert!(parse(&json!([{"Key": "name", "Values": ["-/_"]}])).is_ok());
    }

    #[test]
    fn characters_outside_the_aws_pattern_are_rejected() {
        for v in ["a*b", "caf\u{e9}", "x\ny", "50%", "a#b"] {
            let m = err(json!([{"Key": "name", "Values": [v]}]));
            assert!(m.contains("may hold only"), "{m}");
        }
        assert!(err(json!([{"Key": "name", "Values": ["tab\there"]}])).contains("U+0009"));
        assert!(
            parse(&json!([{"Key": "name", "Values": ["prod/db:main_1@x+y=z.w-v !!q"]}])).is_ok()
        );
    }

    #[test]
    fn messages_quote_little_input() {
        let huge_key = "k".repeat(10_000);
        let m = err(json!([{"Key": huge_key, "Values": ["x"]}]));
        assert!(m.len() < 250, "{}", m.len());
    }

    // ---- matching ----

    #[test]
    fn no_filters_match_everything() {
        assert!(hit(&Secret::new("anything"), &[]));
    }

    #[test]
    fn name_is_a_case_sensitive_prefix_of_the_whole_name() {
        let s = Secret::new("DatabaseSecret");
        assert!(one(&s, FilterKey::Name, &["Data"]));
        assert!(one(&s, FilterKey::Name, &["DatabaseSecret"]));
        assert!(!one(&s, FilterKey::Name, &["data"]));
        assert!(!one(&s, FilterKey::Name, &["Secret"]));
        assert!(!one(&s, FilterKey::Name, &["DatabaseSecrets"]));
        assert!(!one(&Secret::new("MyData"), FilterKey::Name, &["Data"]));
        // Paths are not special: a prefix may end mid-segment.
        let p = Secret::new("prod/db/main");
        assert!(one(&p, FilterKey::Name, &["prod/"]));
        assert!(one(&p, FilterKey::Name, &["prod/d"]));
        assert!(!one(&p, FilterKey::Name, &["db"]));
    }

    #[test]
    fn values_of_one_filter_are_ored() {
        let s = Secret::new("prod/db");
        assert!(one(&s, FilterKey::Name, &["dev/", "prod/"]));
        assert!(!one(&s, FilterKey::Name, &["dev/", "test/"]));
    }

    #[test]
    fn filters_are_anded() {
        let s = Secret::new("prod/db").tag("team", "payments");
        let name = f(FilterKey::Name, &["prod/"]);
        assert!(hit(&s, &[name.clone(), f(FilterKey::TagKey, &["team"])]));
        assert!(!hit(&s, &[name.clone(), f(FilterKey::TagKey, &["owner"])]));
        assert!(!hit(
            &s,
            &[
                f(FilterKey::Name, &["dev/"]),
                f(FilterKey::TagKey, &["team"])
            ]
        ));
        // The same key twice: both must hold.
        assert!(hit(&s, &[name.clone(), f(FilterKey::Name, &["prod/d"])]));
        assert!(!hit(&s, &[name, f(FilterKey::Name, &["prod/x"])]));
    }

    #[test]
    fn negation_excludes() {
        let s = Secret::new("prod/db");
        assert!(!one(&s, FilterKey::Name, &["!prod/"]));
        assert!(one(&s, FilterKey::Name, &["!dev/"]));
        // Negated values: none may match.
        assert!(!one(&s, FilterKey::Name, &["!dev/", "!prod/"]));
        assert!(one(&s, FilterKey::Name, &["!dev/", "!test/"]));
        // Negation is case-sensitive like the key.
        assert!(one(&s, FilterKey::Name, &["!PROD/"]));
    }

    #[test]
    fn plain_and_negated_values_combine() {
        // "prod, but not prod/legacy".
        let values = ["prod/", "!prod/legacy"];
        assert!(one(&Secret::new("prod/db"), FilterKey::Name, &values));
        assert!(!one(
            &Secret::new("prod/legacy-db"),
            FilterKey::Name,
            &values
        ));
        assert!(!one(&Secret::new("dev/db"), FilterKey::Name, &values));
        // Order does not matter.
        let reversed = ["!prod/legacy", "prod/"];
        assert!(one(&Secret::new("prod/db"), FilterKey::Name, &reversed));
        assert!(!one(
            &Secret::new("prod/legacy"),
            FilterKey::Name,
            &reversed
        ));
    }

    #[test]
    fn a_double_bang_negates_a_literal_bang() {
        let s = Secret::new("!important");
        assert!(!one(&s, FilterKey::Name, &["!!imp"]));
        assert!(one(&Secret::new("plain"), FilterKey::Name, &["!!imp"]));
    }

    #[test]
    fn tag_keys_and_values_match_any_tag_by_case_sensitive_prefix() {
        let s = Secret::new("x")
            .tag("Environment", "production")
            .tag("team", "Payments");
        assert!(one(&s, FilterKey::TagKey, &["Env"]));
        assert!(one(&s, FilterKey::TagKey, &["te"]));
        assert!(!one(&s, FilterKey::TagKey, &["env"]));
        assert!(!one(&s, FilterKey::TagKey, &["production"]));
        assert!(one(&s, FilterKey::TagValue, &["prod"]));
        assert!(one(&s, FilterKey::TagValue, &["Pay"]));
        assert!(!one(&s, FilterKey::TagValue, &["pay"]));
        assert!(!one(&s, FilterKey::TagValue, &["team"]));
        // Negation: excluded when any tag matches.
        assert!(!one(&s, FilterKey::TagKey, &["!team"]));
        assert!(one(&s, FilterKey::TagKey, &["!owner"]));
        assert!(!one(&s, FilterKey::TagValue, &["!prod"]));
    }

    #[test]
    fn missing_attributes_match_only_negations() {
        let bare = Secret::new("x");
        assert!(!one(&bare, FilterKey::TagKey, &["a"]));
        assert!(one(&bare, FilterKey::TagKey, &["!a"]));
        assert!(!one(&bare, FilterKey::TagValue, &["a"]));
        assert!(!one(&bare, FilterKey::PrimaryRegion, &["us"]));
        assert!(one(&bare, FilterKey::PrimaryRegion, &["!us"]));
        assert!(!one(&bare, FilterKey::OwningService, &["rds"]));
        assert!(one(&bare, FilterKey::OwningService, &["!rds"]));
        assert!(!one(&bare, FilterKey::Description, &["a"]));
        assert!(one(&bare, FilterKey::Description, &["!a"]));
    }

    #[test]
    fn primary_region_and_owning_service_are_case_sensitive_prefixes() {
        let s = Secret::new("x").region("eu-west-1").owner("rds");
        assert!(one(&s, FilterKey::PrimaryRegion, &["eu-"]));
        assert!(one(&s, FilterKey::PrimaryRegion, &["eu-west-1"]));
        assert!(!one(&s, FilterKey::PrimaryRegion, &["EU"]));
        assert!(!one(&s, FilterKey::PrimaryRegion, &["west"]));
        assert!(!one(&s, FilterKey::PrimaryRegion, &["!eu"]));
        assert!(one(&s, FilterKey::OwningService, &["rd"]));
        assert!(!one(&s, FilterKey::OwningService, &["RDS"]));
        assert!(!one(&s, FilterKey::OwningService, &["ds"]));
        assert!(one(&s, FilterKey::OwningService, &["!appflow"]));
    }

    #[test]
    fn description_ignores_case_and_matches_words() {
        let s = Secret::new("x").desc("Credentials for the Payments database");
        assert!(one(&s, FilterKey::Description, &["credentials for"]));
        assert!(one(&s, FilterKey::Description, &["CRED"]));
        assert!(one(&s, FilterKey::Description, &["payments"]));
        assert!(one(&s, FilterKey::Description, &["data"]));
        assert!(one(&s, FilterKey::Description, &["database payments"]));
        assert!(!one(&s, FilterKey::Description, &["payroll"]));
        // Every word of the value has to be found.
        assert!(!one(&s, FilterKey::Description, &["payments payroll"]));
        assert!(!one(&s, FilterKey::Description, &["!Payments"]));
        assert!(one(&s, FilterKey::Description, &["!payroll"]));

        // The user guide's example.
        for d in [
            "My Description",
            "my description",
            "My basic description",
            "Description of my secret",
        ] {
            let s = Secret::new("x").desc(d);
            assert!(one(&s, FilterKey::Description, &["My Description"]), "{d}");
        }
        let other = Secret::new("x").desc("Mine, no details");
        assert!(!one(&other, FilterKey::Description, &["My Description"]));
    }

    #[test]
    fn description_prefix_with_punctuation_still_matches() {
        let s = Secret::new("x").desc("db-primary: main");
        assert!(one(&s, FilterKey::Description, &["db-primary:"]));
        assert!(one(&s, FilterKey::Description, &["DB-P"]));
    }

    #[test]
    fn all_searches_every_attribute_by_word() {
        let s = Secret::new("prod/PaymentsDb")
            .desc("Main ledger credentials")
            .tag("CostCenter", "cc42")
            .region("eu-west-1")
            .owner("rds");
        for hit_value in [
            "prod", "PROD", "payments", "db", "ledger", "cred", "cost", "center", "cc", "42", "eu",
            "west", "1", "rds",
        ] {
            assert!(one(&s, FilterKey::All, &[hit_value]), "{hit_value}");
        }
        for miss in ["dev", "ments", "ter", "43", "us", "lambda"] {
            assert!(!one(&s, FilterKey::All, &[miss]), "{miss}");
        }
        // Any word of the value is enough (the user guide: "my or secret").
        assert!(one(&s, FilterKey::All, &["dev ledger"]));
        assert!(one(&s, FilterKey::All, &["Dev_Ledger"]));
        assert!(one(&s, FilterKey::All, &["devLedger"]));
        assert!(!one(&s, FilterKey::All, &["dev staging"]));
        // Negated: excluded when any word is found.
        assert!(!one(&s, FilterKey::All, &["!ledger"]));
        assert!(one(&s, FilterKey::All, &["!staging"]));
        assert!(one(&s, FilterKey::All, &["prod", "!staging"]));
        assert!(!one(&s, FilterKey::All, &["prod", "!ledger"]));
    }

    #[test]
    fn words_split_as_documented() {
        assert_eq!(words("credsDatabase#892"), ["creds", "Database", "892"]);
        assert_eq!(words("My_Secret"), ["My", "Secret"]);
        assert_eq!(words("MyData"), ["My", "Data"]);
        assert_eq!(words("HTTPServer2go"), ["HTTP", "Server", "2", "go"]);
        assert_eq!(words("prod/db-main.v2"), ["prod", "db", "main", "v", "2"]);
        assert_eq!(words("ALLCAPS"), ["ALLCAPS"]);
        assert_eq!(words("  --  "), Vec::<&str>::new());
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words("a"), ["a"]);
        assert_eq!(words("ÉtéCafé"), ["Été", "Café"]);
    }

    #[test]
    fn case_folding_is_by_character() {
        assert!(starts_with_ignore_case("Straße", "STRA"));
        assert!(starts_with_ignore_case("ÉTÉ", "été"));
        assert!(!starts_with_ignore_case("ab", "abc"));
        assert!(starts_with_ignore_case("abc", ""));
    }

    #[test]
    fn parse_then_match() {
        let filters = parse(&json!([
            {"Key": "name", "Values": ["prod/", "!prod/legacy"]},
            {"Key": "tag-key", "Values": ["team"]}
        ]))
        .expect("valid");
        assert!(hit(&Secret::new("prod/db").tag("team", "a"), &filters));
        assert!(!hit(&Secret::new("prod/db"), &filters));
        assert!(!hit(&Secret::new("prod/legacy").tag("team", "a"), &filters));
    }
}
