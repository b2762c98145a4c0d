//! `cosfs serve` as a process (for tests that kill it, restart it, or run it with flags),
//! killed when dropped, also on panic.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::BUCKET;

pub struct ServeProcess {
    pub child: Child,
    /// The endpoint it printed (port 0 resolved).
    pub endpoint: String,
}

impl ServeProcess {
    /// `cosfs serve --root ROOT --bucket BUCKET ARGS...` (ARGS give `--listen` and the
    /// authentication); returns once it prints its endpoint.
    pub fn start(root: &Path, args: &[&str]) -> ServeProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cosfs"))
            .args(["serve", "--root"])
            .arg(root)
            .args(["--bucket", BUCKET])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn cosfs serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no endpoint in {line:?}"))
            .to_string();
        ServeProcess { child, endpoint }
    }

    /// SIGKILL, and wait for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
