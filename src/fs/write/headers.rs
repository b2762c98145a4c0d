//! The headers a publish gives an object, and what the object got.
//!
//! A streamed upload sends its headers at Initiate, long before the file is complete, and COS
//! takes none at Complete. So a streamed upload carries the headers without the times that
//! writes keep moving (`x-cos-meta-mtime`, `-ctime` and their exact forms): such an object's times are its
//! Last-Modified, which is when it was completed, as Tencent's cosfs and s3fs read it. Times a
//! program set (`utimens`) are sent as they are. A single PUT, or a rebuild that initiates at
//! the commit, sends every header.
//!
//! After the upload, `Landed` says what the object carries: everything (`Exact`), everything
//! but the moving times (`TimesFromLastModified`: one HEAD learns them), or headers that
//! changed after the Initiate (`Stale`: one copy onto itself, guarded by the ETag, puts them
//! right; a copy refused because another writer replaced the object leaves that object alone).

use crate::object::PutOptions;

/// The headers of one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// Every header, times included.
    pub full: PutOptions,
    /// What an upload initiated before the end of the writes carries.
    pub streamed: PutOptions,
}

impl Headers {
    /// `full`, whose times were set by the program (`times_set`) or follow the writes.
    pub fn new(full: PutOptions, times_set: bool) -> Self {
        let mut streamed = full.clone();
        if !times_set {
            crate::fs::attr::remove_times(&mut streamed.user_meta);
        }
        Headers { full, streamed }
    }

    /// What an object initiated with `initiated` carries, against these headers.
    pub fn landed(&self, initiated: &PutOptions) -> Landed {
        if *initiated == self.full {
            Landed::Exact
        } else if *initiated == self.streamed {
            Landed::TimesFromLastModified
        } else {
            Landed::Stale
        }
    }
}

/// What an upload left on the object, against the headers of its publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    Exact,
    /// All but the times, which are the object's Last-Modified.
    TimesFromLastModified,
    /// Headers changed after the upload began: a copy must put them right.
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_carries_all_but_the_moving_times() {
        let mut full = PutOptions::default();
        for (k, v) in [("mode", "33188"), ("mtime", "1.5"), ("ctime", "1.5")] {
            full.user_meta.insert(k.into(), v.into());
        }
        let h = Headers::new(full.clone(), false);
        assert_eq!(h.streamed.user_meta.len(), 1);
        assert_eq!(h.landed(&h.streamed), Landed::TimesFromLastModified);
        assert_eq!(h.landed(&full), Landed::Exact);
        let mut chmodded = h.streamed.clone();
        chmodded.user_meta.insert("mode".into(), "33261".into());
        assert_eq!(h.landed(&chmodded), Landed::Stale);
        let set = Headers::new(full.clone(), true);
        assert_eq!(set.streamed, full, "times a program set go with the upload");
    }
}
