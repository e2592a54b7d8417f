use serde::Deserialize;
use toml::Spanned;
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Top { a: Option<Spanned<Inner>>, #[serde(default)] list: Vec<Spanned<Inner>> , x: Option<Spanned<u32>>}
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Inner { b: Option<Spanned<u32>>, c: Option<Spanned<Vec<Spanned<u16>>>>, d: Spanned<String> }
fn run(s: &str) {
    let de = toml::Deserializer::new(s);
    let r: Result<Top, _> = serde_path_to_error::deserialize(de);
    match r {
        Ok(t) => println!("OK {t:?}"),
        Err(e) => { let p = e.path().to_string(); let inner = e.into_inner(); println!("ERR path={p} span={:?} msg={:?}", inner.span(), inner.message()); }
    }
}
#[test]
fn t() {
    run("x = 1\n[a]\nb = 2\nd = 'hi'\n");
    run("x = 1\n[a]\nb = 2\nzz = 3\nd = 'hi'\n");
    run("x = 1\n[a]\nb = 'str'\nd = 'hi'\n");
    run("x = 1\n[a]\nb = 2\n");
    run("x = 1\n[a]\nb = 2\nc = [1, 2, 70000]\nd='x'\n");
    run("x = 1\n[[list]]\nd='x'\n[[list]]\nd='y'\nb=-1\n");
    run("x = 1\n[a]\nb = 2\nd = 'hi'\n[a]\nd='x'\n");
    run("x = = 1\n");
    run("y = 1\n");
    run("a = { b = 1, d = 'q', e = 2 }\n");
    run("x = 1\n[a]\nd = 'hi'\n[a.zz]\nq=1\n");
}
