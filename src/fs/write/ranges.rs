//! A set of byte ranges (sorted, disjoint, merged), for the dirty bytes of a staged file.

use std::collections::BTreeMap;
use std::ops::Range;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end, disjoint and not touching.
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of `r` not yet in the set.
    pub fn missing_len(&self, r: Range<u64>) -> u64 {
        let covered: u64 = self
            .overlapping(r.clone())
            .map(|o| o.end.min(r.end) - o.start.max(r.start))
            .sum();
        (r.end - r.start) - covered
    }

    fn overlapping(&self, r: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self
            .map
            .range(..=r.start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(r.start);
        self.map
            .range(first..r.end)
            .filter(move |(_, &e)| e > r.start)
            .map(|(&s, &e)| s..e)
    }

    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut s, mut e) = (r.start, r.end);
        let touching: Vec<(u64, u64)> = self
            .map
            .range(..=e)
            .rev()
            .take_while(|(_, &end)| end >= s)
            .map(|(&a, &b)| (a, b))
            .collect();
        for (a, b) in touching {
            self.map.remove(&a);
            s = s.min(a);
            e = e.max(b);
        }
        self.map.insert(s, e);
    }

    /// Drop everything at or beyond `at`; returns how many bytes were dropped.
    pub fn truncate(&mut self, at: u64) -> u64 {
        let mut dropped = 0;
        let tail: Vec<(u64, u64)> = self
            .map
            .range(..)
            .filter(|(_, &e)| e > at)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in tail {
            self.map.remove(&s);
            if s < at {
                self.map.insert(s, at);
                dropped += e - at;
            } else {
                dropped += e - s;
            }
        }
        dropped
    }

    pub fn len_bytes(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The parts of `within` that are not in the set.
    pub fn gaps(&self, within: Range<u64>) -> Vec<Range<u64>> {
        let mut out = Vec::new();
        let mut at = within.start;
        for o in self.overlapping(within.clone()) {
            if o.start > at {
                out.push(at..o.start);
            }
            at = at.max(o.end);
        }
        if at < within.end {
            out.push(at..within.end);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merges_and_gaps_complement() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        assert_eq!(s.missing_len(15..35), 10);
        s.insert(20..30);
        assert_eq!(s.len_bytes(), 30);
        assert_eq!(s.gaps(0..50), vec![0..10, 40..50]);
        s.insert(5..12);
        assert_eq!(s.gaps(0..50), vec![0..5, 40..50]);
        assert_eq!(s.truncate(8), 32);
        assert_eq!(s.gaps(0..10), vec![0..5, 8..10]);
        assert!(!s.is_empty());
        assert_eq!(s.truncate(0), 3);
        assert!(s.is_empty());
    }
}
