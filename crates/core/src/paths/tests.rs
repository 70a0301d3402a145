use super::*;
use crate::error::ErrorCode;
use Operation::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H {
    Login,
    ListRoles,
    ReadRole,
    WriteRole,
    RoleField,
    SecretId,
    Config,
    Data,
    Metadata,
    Catch,
}

static T: PathTable<H> = PathTable::new(&[
    PathEntry::new("login", &[(Ops::WRITE, H::Login)]).unauthenticated(),
    PathEntry::new("role/?", &[(Ops::LIST, H::ListRoles)]),
    PathEntry::new(
        "role/{name}/?",
        &[(Ops::READ, H::ReadRole), (Ops::WRITE, H::WriteRole)],
    )
    .existence_check(),
    PathEntry::new("role/{name}/{field}/?", &[(Ops::ALL, H::RoleField)]),
    PathEntry::new("role/{name}/secret-id/?", &[(Ops::WRITE, H::SecretId)]).sudo(),
    PathEntry::new("config", &[(Ops::READ, H::Config)]),
    PathEntry::new("data/{path+}", &[(Ops::READ, H::Data)]),
    PathEntry::new("metadata/{path*}", &[(Ops::LIST, H::Metadata)]),
]);

fn handler(path: &str, op: Operation) -> std::result::Result<H, ErrorCode> {
    let m = T.lookup(path).ok_or(ErrorCode::NotFound)?;
    T.handler(&m, op).map_err(|e| e.code)
}

fn cap(path: &str, name: &str) -> String {
    let m = T.lookup(path).expect("matches");
    m.captures(path).get(name).expect("captured").to_string()
}

#[test]
fn the_table_is_well_formed() {
    assert!(T.problems().is_empty(), "{:?}", T.problems());
}

#[test]
fn literals_and_segment_captures() {
    assert_eq!(handler("login", Update), Ok(H::Login));
    assert_eq!(handler("login", Create), Ok(H::Login));
    assert_eq!(handler("role/web", Read), Ok(H::ReadRole));
    assert_eq!(cap("role/web", "name"), "web");
    assert_eq!(cap("role/web/policies", "name"), "web");
    assert_eq!(cap("role/web/policies", "field"), "policies");
    // a segment capture is one segment, never empty
    assert_eq!(handler("role/web/a/b", Read), Err(ErrorCode::NotFound));
    assert_eq!(handler("login/x", Update), Err(ErrorCode::NotFound));
    assert_eq!(handler("logi", Update), Err(ErrorCode::NotFound));
    assert_eq!(handler("", Read), Err(ErrorCode::NotFound));
}

#[test]
fn remainders() {
    // `+`: not empty, no trailing slash, slashes inside
    assert_eq!(cap("data/a/b/c", "path"), "a/b/c");
    assert_eq!(handler("data/", Read), Err(ErrorCode::NotFound));
    assert_eq!(handler("data/a/", Read), Err(ErrorCode::NotFound));
    assert_eq!(handler("data", Read), Err(ErrorCode::NotFound));
    // `*`: anything after the slash, which must be there
    assert_eq!(cap("metadata/", "path"), "");
    assert_eq!(cap("metadata/a/b/", "path"), "a/b/");
    assert_eq!(handler("metadata", List), Err(ErrorCode::NotFound));
    assert_eq!(handler("metadatax/a", List), Err(ErrorCode::NotFound));
}

#[test]
fn a_whole_path_remainder_matches_the_empty_path() {
    static ALL: PathTable<H> =
        PathTable::new(&[PathEntry::new("{path*}", &[(Ops::ALL, H::Catch)])]);
    for p in ["", "a", "a/b/", "/"] {
        let m = ALL.lookup(p).expect("matches");
        assert_eq!(m.captures(p).get("path").unwrap(), p);
    }
}

#[test]
fn optional_trailing_slash() {
    assert_eq!(handler("role", List), Ok(H::ListRoles));
    assert_eq!(handler("role/", List), Ok(H::ListRoles));
    assert_eq!(handler("role/web/", Read), Ok(H::ReadRole));
    assert_eq!(cap("role/web/", "name"), "web");
    assert_eq!(handler("role/web/secret-id/", Update), Ok(H::SecretId));
    // without `/?` the slash is part of the path
    assert_eq!(handler("login/", Update), Err(ErrorCode::NotFound));
    assert_eq!(handler("config/", Read), Err(ErrorCode::NotFound));
}

#[test]
fn literal_beats_capture_whatever_the_order() {
    // `role/{name}/secret-id` is listed after `role/{name}/{field}` and still wins
    assert_eq!(handler("role/web/secret-id", Update), Ok(H::SecretId));
    assert!(T.lookup("role/web/secret-id").unwrap().flags.sudo);
    assert_eq!(handler("role/web/policies", Update), Ok(H::RoleField));
    assert!(!T.lookup("role/web/policies").unwrap().flags.sudo);
    // and a segment capture beats a remainder
    static R: PathTable<H> = PathTable::new(&[
        PathEntry::new("x/{rest*}", &[(Ops::ALL, H::Catch)]),
        PathEntry::new("x/{a+}", &[(Ops::ALL, H::Data)]),
        PathEntry::new("x/{a}", &[(Ops::ALL, H::Config)]),
        PathEntry::new("x/y", &[(Ops::ALL, H::Login)]),
    ]);
    let h = |p: &str| R.handler(&R.lookup(p).unwrap(), Read).unwrap();
    assert_eq!(h("x/y"), H::Login);
    assert_eq!(h("x/z"), H::Config);
    assert_eq!(h("x/z/w"), H::Data);
    assert_eq!(h("x/z/"), H::Catch);
    assert_eq!(h("x/"), H::Catch);
}

#[test]
fn unsupported_operation_is_not_an_unknown_path() {
    assert_eq!(handler("login", Read), Err(ErrorCode::UnsupportedOperation));
    assert_eq!(
        handler("role/web", Delete),
        Err(ErrorCode::UnsupportedOperation)
    );
    assert_eq!(handler("role", Read), Err(ErrorCode::UnsupportedOperation));
    assert_eq!(handler("nope", Read), Err(ErrorCode::NotFound));
    let e = T.handler(&T.lookup("login").unwrap(), Read).unwrap_err();
    assert_eq!(e.message, "unsupported operation");
}

#[test]
fn flags() {
    assert!(T.flags("login").unauthenticated);
    assert!(!T.flags("login").sudo);
    assert!(T.flags("role/web").existence_check);
    assert!(!T.flags("role/web/policies").existence_check);
    assert_eq!(T.flags("unknown"), PathFlags::default());
}

#[test]
fn a_match_is_only_used_with_its_table() {
    static OTHER: PathTable<H> =
        PathTable::new(&[PathEntry::new("login", &[(Ops::WRITE, H::Catch)])]);
    let m = OTHER.lookup("login").unwrap();
    assert_eq!(T.handler(&m, Update).unwrap_err().code, ErrorCode::Internal);
    // a capture the pattern does not have is an error, not a panic
    let m = T.lookup("role/web").unwrap();
    assert_eq!(
        m.captures("role/web").get("field").unwrap_err().code,
        ErrorCode::Internal
    );
    // nor does a path other than the matched one panic
    assert!(m.captures("").get("name").is_err());
}

#[test]
fn problems_are_found() {
    static BAD: PathTable<H> = PathTable::new(&[
        PathEntry::new("a/{rest*}/b", &[(Ops::READ, H::Catch)]),
        PathEntry::new("b/{x}", &[(Ops::READ, H::Catch)]),
        PathEntry::new("b/{y}", &[(Ops::READ, H::Catch)]),
        PathEntry::new("c", &[]),
        PathEntry::new("d", &[(Ops::WRITE, H::Catch), (Ops::UPDATE, H::Catch)]),
        PathEntry::new("e/{a}/{b}/{c}/{d}/{e}", &[(Ops::READ, H::Catch)]),
        PathEntry::new("f/{}", &[(Ops::READ, H::Catch)]),
    ]);
    let p = BAD.problems();
    assert_eq!(p.len(), 6, "{p:?}");
    // too many captures never match (rather than dropping one)
    assert!(BAD.lookup("e/1/2/3/4/5").is_none());
}
