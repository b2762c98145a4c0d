//! Tencent's own clients as the referee (`tests/tencent_sdk.py`): the documented calls of
//! cos-python-sdk-v5 and coscmd against `cosfs serve`, and objects passed between them and a
//! cosfs mount of the same bucket, headers included. `.ci/run` installs both from PyPI.

mod common;

use std::process::Command;

use common::mount::{Backend, Mounted};
use common::{BUCKET, SECRET_ID, SECRET_KEY};

#[test]
fn tencent_sdk_and_coscmd_agree_with_the_server_and_the_mount() {
    let b = Backend::start();
    // The server's restores finish quickly, so the SDK's restore_object can be read back.
    let mut f = b.server.faults.get();
    f.restore_delay_ms = 200;
    b.server.faults.set(f);
    // A short TTL: the script reads through the mount right after the SDK writes.
    let m = Mounted::start(&b, &["--metadata-ttl", "0"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tencent_sdk.py");
    let out = Command::new("python3")
        .arg(script)
        .env("COS_PORT", b.server.addr.port().to_string())
        .env("COS_BUCKET", BUCKET)
        .env("COS_SECRET_ID", SECRET_ID)
        .env("COS_SECRET_KEY", SECRET_KEY)
        .env("COS_MOUNT", &m.path)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .output()
        .expect("python3 runs the Tencent client checks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "Tencent client checks failed:\n{stdout}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
