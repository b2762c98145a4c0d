//! `scripts/install.sh` and updatedb: it puts `fuse.cosfs` in PRUNEFS of updatedb.conf (so the
//! nightly crawl skips mounted buckets), keeps the rest of the file, does it once however often
//! it runs, and `--uninstall` takes it out again. Installs into temp dirs only.

use std::path::Path;
use std::process::Command;

fn install(dir: &Path, conf: &Path, extra: &[&str]) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(["--bin", env!("CARGO_BIN_EXE_cosfs"), "--no-systemd"])
        .arg("--prefix")
        .arg(dir.join("prefix"))
        .arg("--sbin")
        .arg(dir.join("sbin"))
        .arg("--updatedb-conf")
        .arg(conf)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn install_adds_fuse_cosfs_to_prunefs_once_and_uninstall_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("updatedb.conf");
    let original = "PRUNE_BIND_MOUNTS=\"yes\"\nPRUNEFS=\"NFS afs fuse.sshfs\"\nPRUNEPATHS=\"/tmp /var/spool\"\n";
    std::fs::write(&conf, original).unwrap();
    install(dir.path(), &conf, &[]);
    install(dir.path(), &conf, &[]);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        original.replace("fuse.sshfs\"", "fuse.sshfs fuse.cosfs\""),
        "added once, the rest kept"
    );
    assert!(dir.path().join("sbin/mount.fuse.cosfs").exists());
    install(dir.path(), &conf, &["--uninstall"]);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), original);
    assert!(!dir.path().join("sbin/mount.fuse.cosfs").exists());

    // A file without PRUNEFS gets one naming only cosfs; a missing file is left missing.
    std::fs::write(&conf, "PRUNEPATHS=\"/tmp\"\n").unwrap();
    install(dir.path(), &conf, &[]);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "PRUNEPATHS=\"/tmp\"\nPRUNEFS=\"fuse.cosfs\"\n"
    );
    let missing = dir.path().join("none.conf");
    install(dir.path(), &missing, &[]);
    assert!(!missing.exists());
}
