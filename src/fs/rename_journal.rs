//! The rename journal: a directory rename copies every key below it and then deletes the
//! sources, so a crash in between would leave two trees. Before the first copy, the rename
//! writes what it is doing to an object on COS, where the next mount or `cosfs check --repair`
//! on any machine can find it, and finishes or undoes what a crash left.
//!
//! - The journal is `PREFIX.cosfs/renames/ID` (`PREFIX` is the mount's key prefix), a small
//!   JSON object: the source and destination prefixes, the state, who is renaming and since
//!   when. It exists only while a directory rename runs (listings show `.cosfs` at the mount
//!   root meanwhile) and is deleted when it ends, successfully or not.
//! - States: `copying` until every copy has landed, then `deleting`. A rename interrupted
//!   while `copying` is undone: every copy whose source is still there with the same content
//!   is deleted, so the source tree is as it was. One interrupted while `deleting` is
//!   finished: every source key left is deleted (copied first if its copy is missing).
//! - Who may repair: the journal names its mount (boot id, pid and process start time). A
//!   mount on the same machine repairs at once when that process is gone; anyone else waits
//!   until the journal has not been rewritten for `STALE` (a running rename rewrites it every
//!   `HEARTBEAT`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::object::{
    CosResult, GetOptions, ListEntry, ListRequest, MetadataDirective, ObjectStore, PutOptions,
    MAX_DELETE_KEYS,
};

/// How often a running rename rewrites its journal.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// A journal not rewritten for this long belongs to a rename that is not running any more.
pub const STALE: Duration = Duration::from_secs(300);

/// Where the journals of a mount with key prefix `prefix` are.
pub fn journal_prefix(prefix: &str) -> String {
    format!("{prefix}.cosfs/renames/")
}

/// What one directory rename is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRecord {
    /// Source key prefix (`a/b/`).
    pub from: String,
    /// Destination key prefix.
    pub to: String,
    /// `copying` or `deleting`.
    pub state: String,
    /// The destination had a marker of its own (an empty directory the rename replaces):
    /// an undo leaves it.
    #[serde(default)]
    pub replaces_marker: bool,
    /// The renaming process: `boot-id/pid/start-time`.
    pub owner: String,
    /// Unix seconds when the rename began.
    pub started: u64,
}

/// The process identity a journal names: the boot, the pid and when the process started, so
/// a reused pid is not taken for the renamer.
pub fn this_process() -> String {
    process_id(std::process::id()).unwrap_or_else(|| format!("?/{}/?", std::process::id()))
}

fn process_id(pid: u32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The start time is field 22; fields after the command (in parentheses) split cleanly.
    let after = stat.rsplit_once(')')?.1;
    let start = after.split_whitespace().nth(19)?;
    Some(format!("{}/{pid}/{start}", boot.trim()))
}

/// Whether the process `owner` names is gone, as far as this machine can tell (None: it ran
/// on another machine, or another boot of this one... which means gone too).
fn owner_gone(owner: &str) -> Option<bool> {
    let mut f = owner.split('/');
    let (boot, pid) = (f.next()?, f.next()?.parse::<u32>().ok()?);
    let ours = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    if boot != ours.trim() {
        return None;
    }
    Some(process_id(pid).as_deref() != Some(owner))
}

/// A rename's journal while it runs.
pub struct RenameJournal {
    key: String,
    record: RenameRecord,
}

impl RenameJournal {
    /// Write the journal of renaming `from` to `to` (state `copying`).
    pub async fn begin<S: ObjectStore + ?Sized>(
        store: &S,
        prefix: &str,
        from: &str,
        to: &str,
        replaces_marker: bool,
    ) -> CosResult<RenameJournal> {
        let j = RenameJournal {
            key: format!("{}{:016x}", journal_prefix(prefix), rand::random::<u64>()),
            record: RenameRecord {
                from: from.to_string(),
                to: to.to_string(),
                state: "copying".into(),
                replaces_marker,
                owner: this_process(),
                started: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
            },
        };
        j.write(store).await?;
        Ok(j)
    }

    async fn write<S: ObjectStore + ?Sized>(&self, store: &S) -> CosResult<()> {
        let body = serde_json::to_vec(&self.record).expect("a record serialises");
        let opts = PutOptions {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        store
            .put_object(&self.key, Bytes::from(body), &opts)
            .await?;
        Ok(())
    }

    /// Rewrite the journal as it is: the rename still runs.
    pub async fn heartbeat<S: ObjectStore + ?Sized>(&self, store: &S) {
        if let Err(e) = self.write(store).await {
            tracing::debug!(key = %self.key, error = %e, "rename journal heartbeat failed");
        }
    }

    /// Every copy landed: from now on an interruption is finished, not undone.
    pub async fn copied<S: ObjectStore + ?Sized>(&mut self, store: &S) -> CosResult<()> {
        self.record.state = "deleting".into();
        self.write(store).await
    }

    /// Run `work` (the copies), rewriting the journal every `HEARTBEAT` meanwhile.
    pub async fn while_running<S: ObjectStore + ?Sized, F: std::future::Future>(
        &self,
        store: &S,
        work: F,
    ) -> F::Output {
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = beat.tick() => self.heartbeat(store).await,
            }
        }
    }

    /// The rename ended (done, or undone by itself): the journal goes.
    pub async fn end<S: ObjectStore + ?Sized>(self, store: &S) {
        if let Err(e) = store.delete_object(&self.key).await {
            tracing::warn!(key = %self.key, error = %e, "could not delete a finished rename's journal; the next mount or cosfs check --repair finds nothing to do and removes it");
        }
    }
}

/// What `repair` found and did, one line per journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Interrupted while copying: the copies were removed, the source is as it was.
    Undone {
        from: String,
        to: String,
        removed: usize,
    },
    /// Interrupted while deleting the sources: the rest were deleted.
    Finished {
        from: String,
        to: String,
        deleted: usize,
    },
    /// Still running somewhere (rewritten `age` ago): left alone.
    Running {
        from: String,
        to: String,
        age: Duration,
    },
    /// Interrupted, and left as it is (asked only to look): `state` says what a repair does.
    Interrupted {
        from: String,
        to: String,
        state: String,
    },
    /// The journal could not be read or the repair failed (it stays, for next time).
    Failed { key: String, why: String },
}

/// Every key under `prefix`.
async fn keys_under<S: ObjectStore + ?Sized>(store: &S, prefix: &str) -> CosResult<Vec<ListEntry>> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = store
            .list_objects(&ListRequest {
                prefix: prefix.to_string(),
                delimiter: None,
                marker: marker.clone(),
                max_keys: 1000,
            })
            .await?;
        out.extend(page.entries);
        if !page.is_truncated || page.next_marker.is_none() {
            return Ok(out);
        }
        marker = page.next_marker;
    }
}

/// Delete `keys` with DELETE Multiple; the first key that could not be deleted is the error.
pub async fn delete_all<S: ObjectStore + ?Sized>(store: &S, keys: &[String]) -> CosResult<()> {
    for chunk in keys.chunks(MAX_DELETE_KEYS) {
        let failed = store.delete_objects(chunk).await?;
        if let Some(f) = failed.first() {
            return Err(crate::object::CosError::service(
                500, &f.code, &f.message, &f.key, "",
            ));
        }
    }
    Ok(())
}

/// Finish or undo every interrupted rename under the mount prefix `prefix` whose renamer is
/// gone (see the module comment); with `act` false, only say what is there.
pub async fn repair<S: ObjectStore + ?Sized>(store: &S, prefix: &str, act: bool) -> Vec<Repair> {
    let mut out = Vec::new();
    let journals = match store
        .list_objects(&ListRequest {
            prefix: journal_prefix(prefix),
            delimiter: None,
            marker: None,
            max_keys: 1000,
        })
        .await
    {
        Ok(p) => p.entries,
        Err(e) => {
            out.push(Repair::Failed {
                key: journal_prefix(prefix),
                why: e.to_string(),
            });
            return out;
        }
    };
    for j in journals {
        out.push(repair_one(store, &j.key, j.last_modified, act).await);
    }
    out
}

async fn repair_one<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    last_modified: Option<SystemTime>,
    act: bool,
) -> Repair {
    let failed = |why: String| Repair::Failed {
        key: key.to_string(),
        why,
    };
    let body = match store.get_object(key, &GetOptions::default()).await {
        Ok(g) => match g.collect().await {
            Ok(b) => b,
            Err(e) => return failed(e.to_string()),
        },
        Err(e) if e.is_not_found() => {
            return Repair::Failed {
                key: key.to_string(),
                why: "gone meanwhile (the rename ended)".into(),
            }
        }
        Err(e) => return failed(e.to_string()),
    };
    let rec: RenameRecord = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return failed(format!("not a rename journal: {e}")),
    };
    let age = last_modified
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    let gone = match owner_gone(&rec.owner) {
        Some(gone) => gone,
        None => age >= STALE,
    };
    if !gone {
        return Repair::Running {
            from: rec.from,
            to: rec.to,
            age,
        };
    }
    if !act {
        return Repair::Interrupted {
            from: rec.from,
            to: rec.to,
            state: rec.state,
        };
    }
    let r = if rec.state == "deleting" {
        finish(store, &rec).await.map(|deleted| Repair::Finished {
            from: rec.from.clone(),
            to: rec.to.clone(),
            deleted,
        })
    } else {
        undo(store, &rec).await.map(|removed| Repair::Undone {
            from: rec.from.clone(),
            to: rec.to.clone(),
            removed,
        })
    };
    match r {
        Ok(done) => {
            if let Err(e) = store.delete_object(key).await {
                return failed(format!("repaired, but the journal stays: {e}"));
            }
            tracing::warn!(?done, "an interrupted directory rename was repaired");
            done
        }
        Err(e) => failed(e.to_string()),
    }
}

/// Remove the copies an interrupted rename made: each destination key whose source is still
/// there with the same size and ETag (a key written there since stays).
async fn undo<S: ObjectStore + ?Sized>(store: &S, rec: &RenameRecord) -> CosResult<usize> {
    let sources: std::collections::HashMap<String, (u64, String)> = keys_under(store, &rec.from)
        .await?
        .into_iter()
        .map(|e| (e.key[rec.from.len()..].to_string(), (e.size, e.etag)))
        .collect();
    let mut copies = Vec::new();
    for ListEntry {
        key: k, size, etag, ..
    } in keys_under(store, &rec.to).await?
    {
        let rest = &k[rec.to.len()..];
        if rest.is_empty() && rec.replaces_marker {
            continue;
        }
        let same = match sources.get(rest) {
            Some((s, e)) if *s == size && *e == etag => true,
            // A copy made in parts (over 5 GB) has an ETag of its own: compare CRC-64s.
            Some((s, _)) if *s == size => {
                let (a, b) = (
                    store.head_object(&format!("{}{rest}", rec.from)).await?,
                    store.head_object(&k).await?,
                );
                a.crc64.is_some() && a.crc64 == b.crc64
            }
            _ => false,
        };
        if same {
            copies.push(k);
        }
    }
    delete_all(store, &copies).await?;
    Ok(copies.len())
}

/// Delete the sources an interrupted rename left, copying first any whose copy is missing.
async fn finish<S: ObjectStore + ?Sized>(store: &S, rec: &RenameRecord) -> CosResult<usize> {
    let dests: std::collections::HashSet<String> = keys_under(store, &rec.to)
        .await?
        .into_iter()
        .map(|e| e.key[rec.to.len()..].to_string())
        .collect();
    let mut sources = Vec::new();
    for e in keys_under(store, &rec.from).await? {
        let rest = &e.key[rec.from.len()..];
        if !dests.contains(rest) {
            crate::fs::meta::copy_object(
                store,
                &e.key,
                &format!("{}{rest}", rec.to),
                (e.size, &e.etag, e.storage_class.as_deref()),
                MetadataDirective::Copy,
            )
            .await?;
        }
        sources.push(e.key);
    }
    delete_all(store, &sources).await?;
    Ok(sources.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_gone() {
        let me = this_process();
        assert_eq!(owner_gone(&me), Some(false), "{me}");
        let boot = me.split('/').next().unwrap();
        assert_eq!(
            owner_gone(&format!("{boot}/{}/1", std::process::id())),
            Some(true)
        );
        assert_eq!(owner_gone("another-boot/1/1"), None);
    }
}
