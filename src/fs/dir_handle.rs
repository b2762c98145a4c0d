//! An open directory: its listings and the offsets the kernel gets for their entries.
//!
//! - Offset 0 read a second time is `rewinddir(3)` (or a `seekdir` to the start): a new
//!   listing of the directory as it is now, one generation on. POSIX wants both a rewind
//!   that shows the present and `telldir` positions that stay valid, so the listings before
//!   the rewind are kept too: an offset carries its generation in its top bits, and a
//!   `seekdir` to an offset of an earlier generation reads on in that listing.
//! - Offset layout: `generation << 32 | n`, where `n` is 1 for `.`, 2 for `..` and
//!   `position + 3` for the stream's entries (then this mount's files not on COS yet). The
//!   first generation is 0, so a handle that never rewinds hands out `1, 2, 3, ...`.
//! - At most `GENERATIONS` listings are kept (each holds its names only once read past); an
//!   offset of an older one is read as the same position of the current listing, which is
//!   the same entry unless the directory changed in between.

use std::time::Instant;

use crate::object::ObjectStore;

use super::dir::DirStream;

/// Bits of an offset below the generation.
const GEN_SHIFT: u32 = 32;
const LOW_MASK: u64 = (1 << GEN_SHIFT) - 1;
/// Generations wrap well below the sign bit (offsets are `i64` in FUSE).
const GEN_MASK: u64 = (1 << 30) - 1;
/// Listings kept per handle: the current one and the ones before it.
const GENERATIONS: usize = 4;

/// One listing of the directory, from an open or a rewind.
pub struct Listing<S: ObjectStore + ?Sized> {
    generation: u64,
    stream: DirStream<S>,
    /// Files created on this mount that are not on COS yet (listed after the stream ends),
    /// once the listing's first read found them.
    local_names: Option<Vec<String>>,
    /// When the listing began, and how far it was delivered without a gap: a listing
    /// delivered to its end tells every name of the directory (`KnownDirs`).
    began: Instant,
    delivered_to: u64,
}

impl<S: ObjectStore + ?Sized> Listing<S> {
    fn new(generation: u64, stream: DirStream<S>) -> Self {
        Listing {
            generation,
            stream,
            local_names: None,
            began: Instant::now(),
            delivered_to: 0,
        }
    }

    /// The kernel offset of `n` (1 `.`, 2 `..`, `position + 3` after) in this listing.
    pub fn offset(&self, n: u64) -> u64 {
        self.generation << GEN_SHIFT | n
    }

    pub fn stream(&mut self) -> &mut DirStream<S> {
        &mut self.stream
    }

    /// Whether the files only on this mount are still to be found (before the first read).
    pub fn needs_local_names(&self) -> bool {
        self.local_names.is_none()
    }

    pub fn set_local_names(&mut self, names: Vec<String>) {
        self.local_names = Some(names);
    }

    pub fn local_names(&self) -> &[String] {
        self.local_names.as_deref().unwrap_or_default()
    }

    /// Positions `pos..next` were handed out.
    pub fn delivered(&mut self, pos: u64, next: u64) {
        if pos <= self.delivered_to {
            self.delivered_to = self.delivered_to.max(next);
        }
    }

    /// When the listing began, if it was delivered without a gap to `end` and every key it
    /// saw has a name: then it tells every name of the directory.
    pub fn complete_since(&self, end: u64) -> Option<Instant> {
        (self.delivered_to >= end && !self.stream.holds_hidden()).then_some(self.began)
    }
}

pub struct DirHandle<S: ObjectStore + ?Sized> {
    pub ino: u64,
    current: Listing<S>,
    /// Earlier listings, newest last.
    earlier: Vec<Listing<S>>,
    /// The current listing was read from offset 0: the next read there is a rewind.
    started: bool,
}

impl<S: ObjectStore + ?Sized> DirHandle<S> {
    pub fn new(ino: u64, stream: DirStream<S>) -> Self {
        DirHandle {
            ino,
            current: Listing::new(0, stream),
            earlier: Vec::new(),
            started: false,
        }
    }

    /// Whether a read at `offset` starts a new listing (then call `rewind`).
    pub fn is_rewind(&self, offset: u64) -> bool {
        offset == 0 && self.started
    }

    /// Start a new generation with `stream`; the current listing becomes an earlier one.
    pub fn rewind(&mut self, stream: DirStream<S>) {
        let generation = (self.current.generation + 1) & GEN_MASK;
        let before = std::mem::replace(&mut self.current, Listing::new(generation, stream));
        if self.earlier.len() + 1 >= GENERATIONS {
            self.earlier.remove(0);
        }
        self.earlier.push(before);
        self.started = false;
    }

    /// The listing a read at `offset` continues, and the offset within it (`n`).
    pub fn listing(&mut self, offset: u64) -> (&mut Listing<S>, u64) {
        if offset == 0 {
            self.started = true;
            return (&mut self.current, 0);
        }
        let (generation, n) = (offset >> GEN_SHIFT, offset & LOW_MASK);
        if generation == self.current.generation {
            return (&mut self.current, n);
        }
        match self.earlier.iter_mut().find(|l| l.generation == generation) {
            Some(l) => (l, n),
            None => (&mut self.current, n),
        }
    }
}
