//! Directories whose every name this mount knows: a lookup of any other name in one is
//! answered ENOENT without a request.
//!
//! - Known from a directory this mount made (`mkdir`: empty), or from a listing read from its
//!   start to its end: the names it listed, the names this mount added to the directory while
//!   it ran, and the files open for writing that are not on COS yet.
//! - For `--metadata-ttl` from when the knowledge began (the mkdir, or the listing's start).
//!   A name another client adds is seen after at most that long, as with negative entries.
//! - Kept current by the inode table, under its lock. A name upserted into a known directory
//!   (created, found, renamed in) joins it; a name unlinked or renamed away leaves it. An extra
//!   name is harmless (a lookup of it asks COS); a missing one would be a wrong ENOENT. So a
//!   listing only counts when every position was delivered, and its names are collected from
//!   its start.
//! - Bounded: at most `CAP` names in all. Past that, expired records go, then all of them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most names kept across all known directories (and listings collecting).
const CAP: usize = 262_144;

#[derive(Debug)]
struct Known {
    since: Instant,
    names: HashSet<Arc<str>>,
}

#[derive(Debug, Default)]
struct Collecting {
    /// Open listings of the directory.
    listings: u32,
    names: HashSet<Arc<str>>,
}

#[derive(Debug, Default)]
pub struct KnownDirs {
    known: HashMap<u64, Known>,
    collecting: HashMap<u64, Collecting>,
}

impl KnownDirs {
    /// Whether `name` is known not to be in `dir`.
    pub fn is_absent(&self, dir: u64, name: &str, ttl: Duration) -> bool {
        self.known
            .get(&dir)
            .is_some_and(|k| k.since.elapsed() < ttl && !k.names.contains(name))
    }

    /// Whether `dir` was known, and its knowledge has expired, when it had at most `max`
    /// names: worth one LIST to know it again (`relist`).
    pub fn expired_with_at_most(&self, dir: u64, ttl: Duration, max: usize) -> bool {
        self.known
            .get(&dir)
            .is_some_and(|k| k.since.elapsed() >= ttl && k.names.len() <= max)
    }

    /// Whether `dir` is known to hold no entry (an rmdir needs no LIST to check it).
    pub fn is_empty(&self, dir: u64, ttl: Duration) -> bool {
        self.known
            .get(&dir)
            .is_some_and(|k| k.since.elapsed() < ttl && k.names.is_empty())
    }

    /// This mount made `dir`: it is empty.
    pub fn made(&mut self, dir: u64) {
        self.collecting.remove(&dir);
        self.known.insert(
            dir,
            Known {
                since: Instant::now(),
                names: HashSet::new(),
            },
        );
    }

    /// A listing of `dir` began: collect the names added to it from now on.
    pub fn listing_opened(&mut self, dir: u64) {
        self.collecting.entry(dir).or_default().listings += 1;
    }

    /// A listing of `dir` ended.
    pub fn listing_closed(&mut self, dir: u64) {
        if let Some(c) = self.collecting.get_mut(&dir) {
            c.listings -= 1;
            if c.listings == 0 {
                self.collecting.remove(&dir);
            }
        }
    }

    /// A listing of `dir` opened at `since` delivered every entry; `local` are files on this
    /// mount only (listed after the entries). Everything collected since then is its names.
    pub fn listing_complete(&mut self, dir: u64, since: Instant, local: &[String]) {
        let Some(c) = self.collecting.get(&dir) else {
            return;
        };
        let mut names = c.names.clone();
        names.extend(local.iter().map(|n| Arc::from(n.as_str())));
        if self.total() + names.len() > CAP {
            self.known.clear();
            if self.total() + names.len() > CAP {
                return;
            }
        }
        self.known.insert(dir, Known { since, names });
    }

    /// `name` is in `dir` (made, found, listed or renamed there).
    pub fn added(&mut self, dir: u64, name: &Arc<str>) {
        if let Some(k) = self.known.get_mut(&dir) {
            k.names.insert(name.clone());
        }
        if let Some(c) = self.collecting.get_mut(&dir) {
            c.names.insert(name.clone());
        }
    }

    /// `name` is no longer in `dir`.
    pub fn removed(&mut self, dir: u64, name: &str) {
        if let Some(k) = self.known.get_mut(&dir) {
            k.names.remove(name);
        }
        if let Some(c) = self.collecting.get_mut(&dir) {
            c.names.remove(name);
        }
    }

    /// The directory `dir` was removed.
    pub fn gone(&mut self, dir: u64) {
        self.known.remove(&dir);
    }

    fn total(&self) -> usize {
        self.known.values().map(|k| k.names.len()).sum::<usize>()
            + self
                .collecting
                .values()
                .map(|c| c.names.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    #[test]
    fn a_made_directory_knows_what_is_added_and_removed() {
        let mut k = KnownDirs::default();
        assert!(!k.is_absent(7, "a", TTL), "nothing known yet");
        k.made(7);
        assert!(k.is_absent(7, "a", TTL));
        k.added(7, &Arc::from("a"));
        assert!(!k.is_absent(7, "a", TTL));
        assert!(!k.is_empty(7, TTL));
        k.removed(7, "a");
        assert!(k.is_absent(7, "a", TTL));
        assert!(k.is_empty(7, TTL));
        assert!(!k.is_empty(7, Duration::ZERO), "expired");
        assert!(!k.is_absent(7, "a", Duration::ZERO), "expired");
        assert!(k.expired_with_at_most(7, Duration::ZERO, 0));
        assert!(!k.expired_with_at_most(7, TTL, 0), "not expired");
        k.added(7, &Arc::from("b"));
        assert!(
            !k.expired_with_at_most(7, Duration::ZERO, 0),
            "too many names"
        );
        k.gone(7);
        assert!(!k.is_absent(7, "a", TTL));
        assert!(!k.expired_with_at_most(7, Duration::ZERO, 10), "not known");
    }

    #[test]
    fn a_listing_counts_only_once_complete_and_keeps_names_added_meanwhile() {
        let mut k = KnownDirs::default();
        let start = Instant::now();
        k.listing_opened(3);
        k.added(3, &Arc::from("listed"));
        k.added(3, &Arc::from("made-meanwhile"));
        assert!(!k.is_absent(3, "other", TTL), "not complete yet");
        k.listing_complete(3, start, &["local-only".to_string()]);
        k.listing_closed(3);
        for present in ["listed", "made-meanwhile", "local-only"] {
            assert!(!k.is_absent(3, present, TTL), "{present}");
        }
        assert!(k.is_absent(3, "other", TTL));
        // After the listing closed, names still join the known set.
        k.added(3, &Arc::from("later"));
        assert!(!k.is_absent(3, "later", TTL));
        // A listing that ends without completing leaves nothing known.
        k.listing_opened(4);
        k.listing_closed(4);
        assert!(!k.is_absent(4, "x", TTL));
    }
}
