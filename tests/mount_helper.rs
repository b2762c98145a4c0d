//! The operator's path: `scripts/install.sh` puts the mount helper in /sbin, then
//! `mount -t fuse.cosfs` and fstab lines (both the `fuse.cosfs` type and the legacy
//! `cosfs#BUCKET ... fuse` form) mount against `cosfs serve`, and `umount` takes them down.
//! One test function: the helper in /sbin is machine-wide, so nothing here runs in parallel
//! with itself. A guard puts back whatever helper was there before, on every path.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::mount::{is_mounted, Backend, Unmounter};
use common::{BUCKET, SECRET_ID, SECRET_KEY};

const HELPER: &str = "/sbin/mount.fuse.cosfs";
/// Where install.sh puts the binary by default; mount.fuse3 finds `cosfs` there (mount(8)
/// runs helpers with a fixed PATH, so a test prefix would not do).
const BINARY: &str = "/usr/local/bin/cosfs";

/// Restores the machine's previous helper and binary (or their absence) when dropped.
struct InstallGuard {
    saved: Vec<(PathBuf, PathBuf)>,
}

impl InstallGuard {
    fn install() -> InstallGuard {
        let mut saved = Vec::new();
        for p in [HELPER, BINARY] {
            if std::fs::symlink_metadata(p).is_ok() {
                let keep = PathBuf::from(format!("{p}.before-test"));
                std::fs::rename(p, &keep).unwrap();
                saved.push((PathBuf::from(p), keep));
            }
        }
        let guard = InstallGuard { saved };
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
            .args(["--bin", env!("CARGO_BIN_EXE_cosfs"), "--no-systemd"])
            // The machine's updatedb.conf is not this test's to change (install_script.rs).
            .args(["--updatedb-conf", "/nonexistent/updatedb.conf"])
            .output()
            .unwrap();
        assert!(out.status.success(), "install.sh: {}", text(&out));
        guard
    }
}

impl Drop for InstallGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(HELPER);
        let _ = std::fs::remove_file(BINARY);
        for (p, keep) in &self.saved {
            let _ = std::fs::rename(keep, p);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// umount, then wait for the daemon behind the mount to be gone from the mount table.
fn umount(mnt: &Path) {
    let out = run(Command::new("umount").arg(mnt));
    assert!(out.status.success(), "umount: {}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(mnt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!is_mounted(mnt));
}

#[test]
fn mount_helper_fstab_and_legacy_options() {
    let b = Backend::start();
    let tmp = tempfile::tempdir().unwrap();
    let _installed = InstallGuard::install();
    assert!(std::fs::symlink_metadata(HELPER).unwrap().is_symlink());

    let passwd = tmp.path().join("passwd-cosfs");
    std::fs::write(&passwd, format!("{BUCKET}:{SECRET_ID}:{SECRET_KEY}\n")).unwrap();
    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _unmount = Unmounter::new(&mnt);
    let cache = tmp.path().join("cache");
    let opts = format!(
        "url={},passwd_file={},use_cache={}",
        b.endpoint(),
        passwd.display(),
        cache.display()
    );
    b.put("sub/hello.txt", "hello from COS");

    // 1. mount -t fuse.cosfs with fstab-only words mixed in; it returns once mounted.
    let out = run(Command::new("mount")
        .args(["-t", "fuse.cosfs", BUCKET])
        .arg(&mnt)
        .args([
            "-o",
            &format!("_netdev,nofail,x-systemd.automount,uid=4242,umask=027,{opts}"),
        ]));
    assert!(out.status.success(), "mount -t fuse.cosfs: {}", text(&out));
    assert!(is_mounted(&mnt));
    let md = std::fs::metadata(mnt.join("sub/hello.txt")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.uid(), 4242, "uid= maps to the owner of objects");
    assert_eq!(md.mode() & 0o777, 0o640, "umask=027 applies to files");
    std::fs::write(mnt.join("via-helper.txt"), "written through the helper").unwrap();
    umount(&mnt);
    let got = b.block_on(common::get_all(&b.client, "via-helper.txt"));
    assert_eq!(&got[..], b"written through the helper");

    // 2. fstab line of type fuse.cosfs, mounted by its mountpoint alone.
    let fstab = tmp.path().join("fstab");
    let mount_by_fstab = |line: String, file: &str, want: &str| {
        std::fs::write(&fstab, format!("# test fstab\n{line}\n")).unwrap();
        let out = run(Command::new("mount").arg("-T").arg(&fstab).arg(&mnt));
        assert!(out.status.success(), "mount by {line}: {}", text(&out));
        assert_eq!(
            std::fs::read_to_string(mnt.join(file)).unwrap(),
            want,
            "{line}"
        );
        umount(&mnt);
    };
    // The :/sub prefix is the root.
    mount_by_fstab(
        format!(
            "{BUCKET}:/sub {} fuse.cosfs _netdev,allow_other,{opts} 0 0",
            mnt.display()
        ),
        "hello.txt",
        "hello from COS",
    );
    // 3. the legacy fstab form: mount.fuse3 runs `cosfs` (installed in /usr/local/bin).
    mount_by_fstab(
        format!(
            "cosfs#{BUCKET} {} fuse _netdev,{opts},dbglevel=warn 0 0",
            mnt.display()
        ),
        "via-helper.txt",
        "written through the helper",
    );

    // 4. an option cosfs does not know is refused by name, and nothing is mounted.
    let out = run(Command::new("mount")
        .args(["-t", "fuse.cosfs", BUCKET])
        .arg(&mnt)
        .args(["-o", &format!("{opts},frobnicate=1")]));
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("unknown option \"frobnicate\""),
        "{}",
        text(&out)
    );
    assert!(!is_mounted(&mnt));
}
