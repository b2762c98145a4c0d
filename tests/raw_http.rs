//! Runs `tests/raw_http.py`: an independent (Python stdlib) implementation of COS signing,
//! CRC-64 and XML driving `cosfs serve` with raw HTTP, so the server is not only checked by
//! the client that shares its code.

use std::process::Command;

#[test]
fn server_passes_independent_raw_http_checks() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/raw_http.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_cosfs"))
        .output()
        .expect("python3 must be installed to run the raw HTTP checks");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "raw HTTP checks failed:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
