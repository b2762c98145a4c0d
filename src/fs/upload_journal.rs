//! The upload journal: the multipart uploads this mount has under way, in a file of its private
//! directory, so that the next mount can abort the ones a killed process left behind.
//!
//! - One file per running mount, `journal.<random>.log`, held with `flock` while the mount
//!   lives. A journal file nobody holds belongs to a mount that is gone: the next mount of the
//!   same bucket and prefix (same private directory) reads it, aborts what it lists and
//!   removes it (`take_leftovers`, then `recover`).
//! - Lines: `B seq time key` before an Initiate is sent, `U seq time id` once its upload id is
//!   known, `E seq` once the upload completed or was aborted. Times are local milliseconds;
//!   keys are percent-encoded. A `B` without `E` is an upload that may still exist: its id
//!   when the `U` line is there, and else (a kill, or an Initiate whose answers were all lost)
//!   the uploads of that key initiated between `B` and `U` (or some minutes after `B`) that
//!   hold no part.
//! - Lines are appended, not synced: they survive a killed process (the page cache keeps
//!   them), not a power loss (after which `cosfs check --abort-stale-uploads` helps).
//! - A journal that cannot be written (a read-only mount, a full disk) records nothing; the
//!   mount works on without it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cos::encode::{decode, encode_strict};
use crate::cos::upload::{abort_left_uploads, LeftUploads};
use crate::object::{CosResult, ObjectStore, PutOptions};
use crate::private_dir::{temp_name, PrivateDir};

/// How long after its `B` line an Initiate with no `U` line may have created an upload: its
/// request budget with all retries (the long budget of the default `--op-timeout`).
const UNANSWERED_INITIATE: Duration = Duration::from_secs(600);

/// The journal of the running mount.
pub struct UploadJournal {
    /// The open journal file, or None when this mount keeps no journal.
    file: Mutex<Option<(File, String)>>,
    dir: Option<PrivateDir>,
    next: AtomicU64,
    /// Upload id -> its sequence number, for uploads under way.
    open: Mutex<HashMap<String, u64>>,
    /// Sequence numbers of Initiates under way or unanswered.
    begun: Mutex<std::collections::HashSet<u64>>,
}

/// An upload a gone mount may have left: its key, when its Initiate was sent, when its id
/// came back (if it did) and that id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub key: String,
    pub since: SystemTime,
    pub until: Option<SystemTime>,
    pub upload_id: Option<String>,
}

/// What the journals of gone mounts held: the uploads, and the files to remove once those are
/// dealt with.
#[derive(Debug, Default)]
pub struct Leftovers {
    pub uploads: Vec<Leftover>,
    files: Vec<String>,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl UploadJournal {
    /// A journal that records nothing.
    pub fn off() -> Self {
        UploadJournal {
            file: Mutex::new(None),
            dir: None,
            next: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            begun: Mutex::new(Default::default()),
        }
    }

    /// A new journal file in `dir`, held for this mount's life, and what the journals of gone
    /// mounts there hold.
    pub fn open(dir: PrivateDir) -> (Self, Leftovers) {
        let leftovers = take_leftovers(&dir);
        let name = temp_name("journal", ".log");
        let file = dir.create_new(&name).and_then(|f| {
            rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
            Ok(f)
        });
        let file = match file {
            Ok(f) => Some((f, name)),
            Err(e) => {
                tracing::warn!(dir = %dir.path().display(), error = %e, "no upload journal: uploads a killed mount leaves are not cleaned up by the next one");
                None
            }
        };
        let j = UploadJournal {
            file: Mutex::new(file),
            dir: Some(dir),
            next: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
            begun: Mutex::new(Default::default()),
        };
        (j, leftovers)
    }

    fn line(&self, text: &str) {
        let mut g = self.file.lock().unwrap();
        if let Some((f, _)) = g.as_mut() {
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::warn!(error = %e, "the upload journal cannot be written; it is off from now on");
                *g = None;
            }
        }
    }

    /// An Initiate of `key` is about to be sent; returns its sequence number.
    fn begin(&self, key: &str) -> u64 {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.begun.lock().unwrap().insert(seq);
        self.line(&format!(
            "B {seq} {} {}\n",
            millis(SystemTime::now()),
            encode_strict(key)
        ));
        seq
    }

    /// Initiate `seq` answered with `upload_id`.
    fn started(&self, seq: u64, upload_id: &str) {
        self.open.lock().unwrap().insert(upload_id.to_string(), seq);
        self.line(&format!(
            "U {seq} {} {upload_id}\n",
            millis(SystemTime::now())
        ));
    }

    /// Initiate a multipart upload of `key`, journalled: `B` before it is sent, `U` once its
    /// id is known (an Initiate that failed keeps its `B`: a lost answer may have made one).
    pub async fn initiate<S: ObjectStore + ?Sized>(
        &self,
        store: &S,
        key: &str,
        opts: &PutOptions,
    ) -> CosResult<String> {
        let seq = self.begin(key);
        let id = store.initiate_multipart(key, opts).await?;
        self.started(seq, &id);
        Ok(id)
    }

    /// Upload `upload_id` completed or was aborted: nothing of it is left.
    pub fn ended(&self, upload_id: &str) {
        let Some(seq) = self.open.lock().unwrap().remove(upload_id) else {
            return;
        };
        self.begun.lock().unwrap().remove(&seq);
        self.line(&format!("E {seq}\n"));
    }

    /// Uploads begun and not ended (for tests and the stop).
    pub fn unfinished(&self) -> usize {
        self.begun.lock().unwrap().len()
    }
}

impl Drop for UploadJournal {
    /// A mount that ends with nothing unfinished removes its journal.
    fn drop(&mut self) {
        let unfinished = self.begun.lock().unwrap().len();
        if let (Some((_, name)), Some(dir)) = (self.file.lock().unwrap().take(), &self.dir) {
            if unfinished == 0 {
                let _ = dir.remove_file(&name);
            }
        }
    }
}

/// The uploads the journals of gone mounts in `dir` list (journal files nobody holds).
fn take_leftovers(dir: &PrivateDir) -> Leftovers {
    let mut out = Leftovers::default();
    let Ok(names) = dir.entries("") else {
        return out;
    };
    for (name, _) in names {
        if !(name.starts_with("journal.") && name.ends_with(".log")) {
            continue;
        }
        let Ok(f) = dir.open_file(&name, true) else {
            continue;
        };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // a running mount's
        }
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut &f, &mut text);
        out.uploads.extend(parse(&text));
        out.files.push(name);
    }
    out
}

/// The uploads a journal's text leaves unfinished.
pub fn parse(text: &str) -> Vec<Leftover> {
    let mut begun: std::collections::BTreeMap<u64, Leftover> = Default::default();
    let at = |ms: &str| {
        ms.parse::<u64>()
            .ok()
            .map(|m| UNIX_EPOCH + Duration::from_millis(m))
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["B", seq, ms, key] => {
                if let (Ok(seq), Some(since), Ok(key)) = (seq.parse(), at(ms), decode(key)) {
                    begun.insert(
                        seq,
                        Leftover {
                            key,
                            since,
                            until: None,
                            upload_id: None,
                        },
                    );
                }
            }
            ["U", seq, ms, id] => {
                if let Some(l) = seq.parse().ok().and_then(|s: u64| begun.get_mut(&s)) {
                    l.until = at(ms);
                    l.upload_id = Some(id.to_string());
                }
            }
            ["E", seq] => {
                if let Ok(seq) = seq.parse::<u64>() {
                    begun.remove(&seq);
                }
            }
            _ => {} // a line torn by the kill
        }
    }
    begun.into_values().collect()
}

impl UploadJournal {
    /// Abort what `leftovers` lists, then remove the journals that listed it (kept when a
    /// request failed, for the next mount to try again). Returns the uploads aborted.
    pub async fn recover<S: ObjectStore + ?Sized>(&self, store: &S, leftovers: Leftovers) -> usize {
        match &self.dir {
            Some(dir) => recover(store, dir, leftovers).await,
            None => 0,
        }
    }
}

async fn recover<S: ObjectStore + ?Sized>(
    store: &S,
    dir: &PrivateDir,
    leftovers: Leftovers,
) -> usize {
    let mut aborted = 0;
    let mut all_done = true;
    for l in &leftovers.uploads {
        let left = LeftUploads {
            known: l.upload_id.as_deref(),
            window: Some((l.since, l.until.unwrap_or(l.since + UNANSWERED_INITIATE))),
            keep: None,
        };
        match abort_left_uploads(store, &l.key, &left).await {
            Ok(n) => aborted += n,
            Err(e) => {
                all_done = false;
                tracing::warn!(key = %l.key, error = %e, "could not clean up an upload a gone mount left; the next mount tries again");
            }
        }
    }
    if all_done {
        for f in &leftovers.files {
            let _ = dir.remove_file(f);
        }
    }
    if aborted > 0 {
        tracing::info!(
            aborted,
            "aborted the unfinished uploads a mount that was killed had left"
        );
    }
    aborted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_uploads_are_the_begun_and_not_ended() {
        let text = "B 1 1700000000000 a%20b\nU 1 1700000001000 id-1\nE 1\n\
                    B 2 1700000002000 c\nU 2 1700000003000 id-2\n\
                    B 3 1700000004000 d\nB 4 17000";
        let left = parse(text);
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(left[0].key, "c");
        assert_eq!(left[0].upload_id.as_deref(), Some("id-2"));
        assert_eq!(left[1].key, "d");
        assert_eq!(left[1].upload_id, None, "its Initiate never answered");
    }

    #[test]
    fn a_running_mounts_journal_is_not_taken_and_a_clean_one_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = || PrivateDir::open(&root.path().join("m")).unwrap();
        let (a, none) = UploadJournal::open(dir());
        assert!(none.uploads.is_empty());
        let s = a.begin("k");
        a.started(s, "u1");
        let (b, held) = UploadJournal::open(dir());
        assert!(held.uploads.is_empty(), "a's journal is held");
        drop(b);
        // a dies with k unfinished: its file stays, and the next mount finds it.
        std::mem::forget(a);
        let names = dir().entries("").unwrap();
        assert_eq!(names.len(), 1, "b removed its clean journal: {names:?}");
    }
}
