//! What a mount cleans up when it starts, left by mounts of the same bucket and prefix that
//! are gone: the multipart uploads a killed mount had under way (`upload_journal`), and the
//! directory renames a crash interrupted (`rename_journal`: finished or undone). It runs once,
//! in the background, after the mount is live (`CosFs::recover`); nothing waits for it, and a
//! read-only mount changes nothing.

use crate::object::ObjectStore;

use super::CosFs;
use crate::fs::rename_journal::{repair, Repair};

/// What `recover` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Unfinished uploads of gone mounts, aborted.
    pub uploads_aborted: usize,
    /// Interrupted directory renames found, and what became of each.
    pub renames: Vec<Repair>,
}

impl<S: ObjectStore + ?Sized> CosFs<S> {
    /// Clean up what gone mounts left (once; later calls do nothing).
    pub async fn recover(&self) -> Recovered {
        let leftovers = self.leftovers.lock().unwrap().take();
        let mut done = Recovered::default();
        if let Some(l) = leftovers {
            done.uploads_aborted = self.wctx.journal.recover(&*self.store, l).await;
            if !self.cfg.read_only {
                done.renames = repair(&*self.store, &self.cfg.prefix, true).await;
            }
        }
        done
    }

    /// Multipart uploads this mount has begun and not yet completed or aborted.
    pub fn uploads_unfinished(&self) -> usize {
        self.wctx.journal.unfinished()
    }
}
