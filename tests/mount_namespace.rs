//! Real mounts: what `ls -la`, `stat`, `find` and `cat` show for a tree written through the
//! client, and how many requests a listing costs.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

use common::mount::{Backend, Mounted};
use cosfs::object::PutOptions;

fn names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn meta(pairs: &[(&str, &str)]) -> PutOptions {
    PutOptions {
        user_meta: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tree_as_a_user_sees_it() {
    let b = Backend::start();
    b.put("top.txt", "top\n");
    b.put("empty", "");
    b.put("implicit/deep/er/file", "deep\n");
    b.put("marker/", "");
    b.put("marker/inside", "in\n");
    b.put("only-marker/", "");
    b.put("名前 with space.txt", "unicode\n");
    // Directory shadows file.
    b.put("shadow", "hidden file\n");
    b.put("shadow/visible", "v\n");
    // Written by Tencent's cosfs: a symlink and a file with POSIX metadata.
    b.put_with(
        "link",
        "top.txt",
        meta(&[("mode", &(0o120777).to_string())]),
    );
    b.put_with(
        "owned.bin",
        "secret\n",
        meta(&[
            ("mode", &(0o100600).to_string()),
            ("uid", "1234"),
            ("gid", "5678"),
            ("mtime", "1600000000.5"),
        ]),
    );
    // Keys that cannot be names are skipped.
    b.put("weird//double", "x");
    b.put(&"n".repeat(300), "too long");

    let m = Mounted::start(&b, &[]);

    // stat by name (a lookup) shows cosfs metadata.
    let md = std::fs::symlink_metadata(m.p("owned.bin")).unwrap();
    assert_eq!(md.mode(), 0o100600);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(md.mtime(), 1_600_000_000);
    assert_eq!(md.mtime_nsec(), 500_000_000);
    assert_eq!(md.len(), 7);

    // Symlink: type, target, and following it.
    let lmd = std::fs::symlink_metadata(m.p("link")).unwrap();
    assert!(lmd.file_type().is_symlink());
    assert_eq!(
        std::fs::read_link(m.p("link")).unwrap(),
        std::path::PathBuf::from("top.txt")
    );
    assert_eq!(std::fs::read_to_string(m.p("link")).unwrap(), "top\n");

    assert_eq!(
        names(&m.path),
        set(&[
            "top.txt",
            "empty",
            "implicit",
            "marker",
            "only-marker",
            "名前 with space.txt",
            "shadow",
            "link",
            "owned.bin",
            "weird",
        ])
    );
    assert_eq!(names(&m.p("weird")), set(&[]), "an empty name is skipped");
    assert!(m.p("shadow").is_dir(), "the directory wins");
    assert_eq!(names(&m.p("shadow")), set(&["visible"]));
    assert!(m.p("only-marker").is_dir());
    assert_eq!(names(&m.p("only-marker")), set(&[]));
    assert_eq!(names(&m.p("marker")), set(&["inside"]));
    assert_eq!(names(&m.p("implicit/deep")), set(&["er"]));
    assert_eq!(
        std::fs::read_to_string(m.p("implicit/deep/er/file")).unwrap(),
        "deep\n"
    );
    assert_eq!(
        std::fs::read_to_string(m.p("名前 with space.txt")).unwrap(),
        "unicode\n"
    );
    assert_eq!(std::fs::read(m.p("empty")).unwrap(), b"");
    assert_eq!(std::fs::metadata(m.p("empty")).unwrap().len(), 0);

    // Defaults for objects without metadata; a listing entry keeps what a HEAD found.
    // SAFETY: getuid cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let top = std::fs::symlink_metadata(m.p("top.txt")).unwrap();
    assert_eq!(top.mode(), 0o100644);
    assert_eq!(top.uid(), uid);
    assert!(
        top.mtime() > 1_700_000_000,
        "mtime is Last-Modified, not 1970"
    );
    let dmd = std::fs::metadata(m.p("implicit")).unwrap();
    assert_eq!(dmd.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::symlink_metadata(m.p("owned.bin")).unwrap().mode(),
        0o100600,
        "listing did not overwrite the HEAD attributes of the same version"
    );

    // Names over 255 bytes: ENAMETOOLONG before any request.
    let err = std::fs::metadata(m.p(&"n".repeat(300))).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    let err = std::fs::metadata(m.p("no-such-file")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));

    // Shell tools see the same tree.
    let find = Command::new("find")
        .arg(&m.path)
        .arg("-type")
        .arg("f")
        .output()
        .unwrap();
    let found: BTreeSet<String> = String::from_utf8(find.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{}/", m.path.display()))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        found,
        set(&[
            "top.txt",
            "empty",
            "implicit/deep/er/file",
            "marker/inside",
            "名前 with space.txt",
            "shadow/visible",
            "owned.bin",
        ])
    );
    let ls = Command::new("ls").arg("-la").arg(&m.path).output().unwrap();
    let ls = String::from_utf8(ls.stdout).unwrap();
    assert!(ls.contains("-rw------- 1 1234 5678"), "{ls}");
    assert!(ls.contains("link -> top.txt"), "{ls}");
    let cmp = Command::new("cmp")
        .arg(m.p("implicit/deep/er/file"))
        .arg(m.p("implicit/deep/er/file"))
        .status()
        .unwrap();
    assert!(cmp.success());
}

#[test]
fn prefix_mount_and_listing_attrs() {
    let b = Backend::start();
    b.put("data/a", "a");
    b.put_with(
        "data/sub/meta",
        "m",
        meta(&[("mode", &(0o100600).to_string())]),
    );
    b.put("other/b", "b");
    b.put_with("data/ln", "a", meta(&[("mode", &(0o120777).to_string())]));
    let m = Mounted::start_spec(&b, &format!("{}:/data", common::BUCKET), &[]);
    assert_eq!(names(&m.path), set(&["a", "ln", "sub"]));
    // Listed first, the symlink looked like a file; opening it still follows the link.
    assert_eq!(std::fs::read_to_string(m.p("ln")).unwrap(), "a");
    assert!(std::fs::symlink_metadata(m.p("ln"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Listing first: `ls -l` shows the stored mode all the same.
    let ls = Command::new("ls")
        .arg("-ln")
        .arg(m.p("sub"))
        .output()
        .unwrap();
    let ls = String::from_utf8(ls.stdout).unwrap();
    assert!(ls.contains("-rw-------"), "{ls}");
}

#[test]
fn big_directory_lists_with_one_pipelined_head_per_entry() {
    let b = Backend::start();
    let n = 2500;
    b.block_on(async {
        use cosfs::object::ObjectStore;
        use futures_util::StreamExt;
        futures_util::stream::iter(0..n)
            .map(|i| {
                let c = b.client.clone();
                async move {
                    let body = bytes::Bytes::from(vec![b'x'; i % 7]);
                    c.put_object(&format!("big/f{i:05}"), body, &PutOptions::default())
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    });
    let m = Mounted::start(&b, &["--metadata-ttl", "60"]);
    b.reset_counts();
    let out = Command::new("ls")
        .arg("-l")
        .arg(m.p("big"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('-')).collect();
    assert_eq!(lines.len(), n);
    assert!(text.contains(" 6 ") && text.contains("f02499"));
    let heads = b.count("HeadObject");
    let lists = b.count("ListObjects");
    // One HEAD per entry for its exact metadata, plus the lookup of `big` itself.
    assert!(
        (n as u64..=n as u64 + 2).contains(&heads),
        "ls -l made {heads} HEADs"
    );
    // 3 pages of 1000, plus the lookup of `big` itself (HEAD + LIST).
    assert!(lists <= 5, "ls -l made {lists} LISTs");
    let md = std::fs::metadata(m.p("big/f00006")).unwrap();
    assert_eq!(md.len(), 6);

    // Without listing metadata, a listing is the LIST pages alone.
    let off = Mounted::start(&b, &["--metadata-ttl", "60", "--listing-metadata", "off"]);
    b.reset_counts();
    let out = Command::new("ls")
        .arg("-l")
        .arg(off.p("big"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let heads = b.count("HeadObject");
    assert!(
        heads <= 2,
        "ls -l made {heads} HEADs with --listing-metadata off"
    );
    // Sizes come from the listing.
    let md = std::fs::metadata(off.p("big/f00006")).unwrap();
    assert_eq!(md.len(), 6);
}
