//! Directory streams under change, the way xfstests checks them (`generic/736`, `471`, `676`),
//! through libc's `opendir`/`readdir`/`telldir`/`seekdir`/`rewinddir` on a real mount:
//! - every entry present for the whole stream appears exactly once while the reader renames
//!   each entry it gets away and back (736's pattern, 5,000 entries);
//! - `rewinddir` shows names made after `opendir` (471);
//! - offsets from `telldir` stay valid past the first listing page and after the metadata TTL,
//!   with deletes in between, and `rm -r` of the directory then works (676).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CStr;
use std::path::Path;
use std::time::Duration;

use common::mount::{Backend, Mounted};
use common::posix::cpath;

/// A directory stream of libc's.
struct Dir(*mut libc::DIR);

impl Dir {
    fn open(p: &Path) -> Dir {
        // SAFETY: a valid C string; the result is checked.
        let d = unsafe { libc::opendir(cpath(p).as_ptr()) };
        assert!(!d.is_null(), "opendir {}", p.display());
        Dir(d)
    }

    /// The next name, or None at the end (a read error fails the test).
    fn next(&mut self) -> Option<String> {
        // SAFETY: errno is thread-local; the stream is ours and open.
        unsafe {
            *libc::__errno_location() = 0;
            let e = libc::readdir(self.0);
            if e.is_null() {
                let errno = *libc::__errno_location();
                assert_eq!(errno, 0, "readdir failed: errno {errno}");
                return None;
            }
            Some(
                CStr::from_ptr((*e).d_name.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            )
        }
    }

    fn tell(&mut self) -> libc::c_long {
        // SAFETY: the stream is open.
        unsafe { libc::telldir(self.0) }
    }

    fn seek(&mut self, pos: libc::c_long) {
        // SAFETY: the stream is open; `pos` came from telldir on it.
        unsafe { libc::seekdir(self.0, pos) }
    }

    fn rewind(&mut self) {
        // SAFETY: the stream is open.
        unsafe { libc::rewinddir(self.0) }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: opened by opendir, closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// Every name the stream gives from where it is to its end, with how often it came.
fn counts(d: &mut Dir) -> BTreeMap<String, u32> {
    let mut seen = BTreeMap::new();
    while let Some(n) = d.next() {
        *seen.entry(n).or_insert(0) += 1;
    }
    seen
}

fn numbered(n: usize) -> BTreeSet<String> {
    (1..=n).map(|i| i.to_string()).collect()
}

/// Up to 10 of `names` the stream did not give exactly once, with how often it gave them.
fn not_once<'a>(
    names: impl IntoIterator<Item = &'a String>,
    seen: &BTreeMap<String, u32>,
) -> Vec<(String, u32)> {
    names
        .into_iter()
        .map(|n| (n.clone(), seen.get(n).copied().unwrap_or(0)))
        .filter(|(_, c)| *c != 1)
        .take(10)
        .collect()
}

#[test]
fn every_entry_once_while_the_reader_renames_each_away_and_back() {
    const FILES: usize = 5000;
    let b = Backend::start();
    for name in numbered(FILES) {
        b.put(&format!("d/{name}"), "");
    }
    let m = Mounted::start(&b, &[]);
    let dir = m.p("d");
    let mut d = Dir::open(&dir);
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut total = 0;
    while let Some(name) = d.next() {
        total += 1;
        assert!(total <= 3 * FILES, "endless stream: {total} entries");
        *seen.entry(name.clone()).or_insert(0) += 1;
        if name == "." || name == ".." {
            continue;
        }
        std::fs::rename(dir.join(&name), dir.join("TEMPFILE")).unwrap();
        std::fs::rename(dir.join("TEMPFILE"), dir.join(&name)).unwrap();
    }
    let missing = not_once(&numbered(FILES), &seen);
    assert!(
        missing.is_empty(),
        "names seen other than once: {missing:?}"
    );
    assert_eq!(seen.get("."), Some(&1));
    assert_eq!(seen.get(".."), Some(&1));
    assert!(total >= FILES + 2, "{total} entries");
    let after: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(after, numbered(FILES), "the directory after the renames");
}

#[test]
fn untouched_entries_once_while_another_program_renames_and_creates() {
    const FILES: usize = 3000;
    let b = Backend::start();
    for name in numbered(FILES) {
        b.put(&format!("d/{name}"), "x");
    }
    let m = Mounted::start(&b, &[]);
    let dir = m.p("d");
    // Files whose number ends in 7 move about; the others stay put.
    let moving: Vec<String> = numbered(FILES)
        .into_iter()
        .filter(|n| n.ends_with('7'))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut round = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for n in &moving {
                    let (a, z) = (dir.join(n), dir.join(format!("{n}.moved")));
                    let (from, to) = if round % 2 == 0 { (a, z) } else { (z, a) };
                    std::fs::rename(from, to).unwrap();
                }
                std::fs::write(dir.join(format!("new-{round}")), "n").unwrap();
                round += 1;
            }
        })
    };
    let mut d = Dir::open(&dir);
    let mut seen = BTreeMap::new();
    while let Some(n) = d.next() {
        *seen.entry(n).or_insert(0u32) += 1;
        std::thread::sleep(Duration::from_micros(300));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    changer.join().unwrap();
    let untouched = numbered(FILES);
    let wrong = not_once(untouched.iter().filter(|n| !n.ends_with('7')), &seen);
    assert!(wrong.is_empty(), "untouched names not seen once: {wrong:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "names seen twice: {twice:?}");
}

#[test]
fn rewinddir_shows_the_names_made_after_opendir() {
    const FILES: usize = 2500;
    let b = Backend::start();
    let m = Mounted::start(&b, &[]);
    let dir = m.p("testdir");
    std::fs::create_dir(&dir).unwrap();
    let mut d = Dir::open(&dir);
    // The stream is read once while the directory is empty ...
    let first = counts(&mut d);
    assert_eq!(first.keys().collect::<Vec<_>>(), [".", ".."]);
    for name in numbered(FILES) {
        std::fs::File::create(dir.join(name)).unwrap();
    }
    // ... and after rewinddir(3) shows every name made since, once.
    d.rewind();
    let seen = counts(&mut d);
    let wrong = not_once(&numbered(FILES), &seen);
    assert!(
        wrong.is_empty(),
        "names not seen once after rewinddir: {wrong:?}"
    );
    assert_eq!(seen.get("."), Some(&1));
    assert_eq!(seen.get(".."), Some(&1));
    assert_eq!(seen.len(), FILES + 2);
}

#[test]
fn telldir_offsets_hold_across_pages_after_the_ttl_and_deletes() {
    const FILES: usize = 3000;
    let b = Backend::start();
    for name in numbered(FILES) {
        b.put(&format!("big/{name}"), "x");
    }
    let m = Mounted::start(&b, &["--metadata-ttl", "1"]);
    let dir = m.p("big");
    let mut d = Dir::open(&dir);
    let mut at = BTreeMap::new();
    loop {
        let pos = d.tell();
        let Some(name) = d.next() else { break };
        at.insert(name, pos);
    }
    assert_eq!(at.len(), FILES + 2, "one full pass");
    // Past the TTL, with every tenth file deleted by another program meanwhile.
    std::thread::sleep(Duration::from_millis(1500));
    let deleted: BTreeSet<String> = numbered(FILES)
        .into_iter()
        .filter(|n| n.ends_with('0'))
        .collect();
    for n in &deleted {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    // A rewinddir (or seekdir to the start) in between lists anew, and the offsets told
    // before it still hold.
    d.rewind();
    assert_eq!(d.next().as_deref(), Some("."));
    // seekdir to positions on every page, first page included, in a scrambled order.
    let names: Vec<&String> = at.keys().collect();
    for k in 0..400usize {
        let name = names[(k * 7919) % names.len()];
        d.seek(at[name]);
        let got = d.next();
        if deleted.contains(name) {
            // A removed name is not shown: the stream goes on with the next one.
            assert_ne!(got.as_deref(), Some(name.as_str()), "deleted {name} listed");
            assert!(got.is_some() || at[name] == *at.values().max().unwrap());
        } else {
            assert_eq!(
                got.as_deref(),
                Some(name.as_str()),
                "seekdir to {name}'s offset"
            );
        }
    }
    // Reading on from the middle to the end gives the rest, deleted names left out.
    let mid = names[names.len() / 2];
    d.seek(at[mid]);
    let rest: BTreeSet<String> = counts(&mut d).into_keys().collect();
    let want: BTreeSet<String> = at
        .iter()
        .filter(|(n, p)| **p >= at[mid] && !deleted.contains(*n))
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(rest, want, "from {mid} to the end");
    drop(d);
    // rm -r of the directory then finds it empty.
    let out = std::process::Command::new("rm")
        .arg("-r")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rm -r: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.exists());
}
