//! Small files at few round trips: the requests a shell redirection and `cp` send to create a
//! file in a directory this mount made (no lookup reaches COS: the mount knows the directory's
//! every name), counted by the server.

mod common;

use std::process::Command;

use common::mount::{Backend, Mounted};

fn sh(script: &str) {
    let st = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(st.success(), "{script}");
}

#[test]
fn a_redirect_or_cp_into_a_fresh_directory_is_one_put_and_nothing_else() {
    let b = Backend::start();
    // Long enough that the test never outlives what the mount knows (the default is 1 s).
    let m = Mounted::start(&b, &["--metadata-ttl", "60"]);
    let src = m.dir.path().join("src.txt");
    std::fs::write(&src, vec![b'x'; 4096]).unwrap();
    std::fs::create_dir(m.p("fresh")).unwrap();

    b.reset_counts();
    sh(&format!("echo hello > '{}'", m.p("fresh/a").display()));
    let counts =
        ["HeadObject", "ListObjects", "PutObject", "GetObject"].map(|op| (op, b.count(op)));
    assert_eq!(
        counts,
        [
            ("HeadObject", 0),
            ("ListObjects", 0),
            ("PutObject", 1),
            ("GetObject", 0)
        ],
        "a shell redirection"
    );
    assert_eq!(std::fs::read(m.p("fresh/a")).unwrap(), b"hello\n");

    b.reset_counts();
    sh(&format!(
        "cp '{}' '{}'",
        src.display(),
        m.p("fresh/b").display()
    ));
    assert_eq!(b.count("HeadObject") + b.count("ListObjects"), 0, "cp");
    assert_eq!(b.count("PutObject"), 1, "cp");
    assert_eq!(b.server.stats.total(), 1, "only the PUT");
    assert_eq!(std::fs::read(m.p("fresh/b")).unwrap(), vec![b'x'; 4096]);
}
