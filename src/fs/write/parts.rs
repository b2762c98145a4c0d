//! Part sizes and rebuild plans for uploads (pure arithmetic, no I/O).
//!
//! - Streaming uploads start with `part_size` (8 MiB by default) and double it every 100 parts
//!   up to the 5 GiB maximum: a 1 GiB file uses 8-16 MiB parts, and 10,000 parts hold 44.7 TiB.
//!   (The COS limit, 48.8 TiB, is exactly 10,000 parts of 5 GiB: only a stream that knew its
//!   size in advance could reach it; 91% is as close as a schedule that keeps small files in
//!   small parts gets.)
//! - A rebuild (a file modified in place through the staging file) is planned as a list of
//!   parts, each either copied from the previous version of the object (Upload Part - Copy)
//!   or uploaded from local data. Unchanged runs of at least `copy_min` bytes are copied;
//!   everything else is data. COS wants every part but the last to be at least 1 MiB, so a
//!   short data part in front of a copied run borrows bytes from the start of that run.

use std::ops::Range;

/// COS minimum for every part but the last.
pub const MIN_PART: u64 = 1024 * 1024;
/// COS maximum for one part, and for one PUT or PUT Object - Copy.
pub const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// COS maximum number of parts.
pub const MAX_PARTS: u32 = 10_000;

/// Size of part `n` (1-based) of a streaming upload whose first parts are `first` bytes.
pub fn stream_part_size(first: u64, n: u32) -> u64 {
    let doublings = (n.saturating_sub(1) / 100).min(20);
    (first.max(MIN_PART) << doublings).min(MAX_PART)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartSource {
    /// Bytes `range` of the previous object, copied server-side.
    Copy(Range<u64>),
    /// Bytes `range` of the new file, uploaded from local data.
    Data(Range<u64>),
}

impl PartSource {
    pub fn range(&self) -> &Range<u64> {
        match self {
            PartSource::Copy(r) | PartSource::Data(r) => r,
        }
    }
}

/// Parts for a file of `size` bytes where `clean` (sorted, disjoint) are the ranges still equal
/// to the previous object at the same offsets. `part_size`: the target size of data parts;
/// `copy_min`: shorter clean runs are uploaded as data (a copy request is not worth it).
pub fn plan(size: u64, clean: &[Range<u64>], part_size: u64, copy_min: u64) -> Vec<PartSource> {
    let copy_min = copy_min.max(2 * MIN_PART);
    // Enough data per part that the whole file fits in 10,000 parts.
    let part_size = part_size
        .max(MIN_PART)
        .max(size.div_ceil(MAX_PARTS as u64 - 1000))
        .min(MAX_PART);
    // Runs: (is_copy, range), covering 0..size in order.
    let mut runs: Vec<(bool, Range<u64>)> = Vec::new();
    let mut at = 0;
    for r in clean {
        let (s, e) = (r.start.max(at), r.end.min(size));
        if e <= s || e - s < copy_min {
            continue;
        }
        if s > at {
            runs.push((false, at..s));
        }
        runs.push((true, s..e));
        at = e;
    }
    if at < size {
        runs.push((false, at..size));
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        let (is_copy, r) = runs[i].clone();
        if is_copy {
            let n = (r.end - r.start).div_ceil(MAX_PART);
            let each = (r.end - r.start).div_ceil(n);
            let mut s = r.start;
            while s < r.end {
                let e = (s + each).min(r.end);
                parts.push(PartSource::Copy(s..e));
                s = e;
            }
        } else {
            let mut s = r.start;
            while s < r.end {
                let e = (s + part_size).min(r.end);
                parts.push(PartSource::Data(s..e));
                s = e;
            }
            // A short last data part before a copied run borrows from that run.
            if let (Some(PartSource::Data(last)), Some((true, next))) =
                (parts.last_mut(), runs.get_mut(i + 1))
            {
                if last.end - last.start < MIN_PART {
                    let borrow = MIN_PART - (last.end - last.start);
                    last.end += borrow;
                    next.start += borrow;
                }
            }
        }
        i += 1;
    }
    if parts.is_empty() {
        parts.push(PartSource::Data(0..0));
    }
    parts
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn check(parts: &[PartSource], size: u64) {
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            let r = p.range();
            assert_eq!(r.start, at, "parts are contiguous: {parts:?}");
            if i + 1 < parts.len() {
                assert!(r.end - r.start >= MIN_PART, "part {i} too small: {parts:?}");
            }
            assert!(r.end - r.start <= MAX_PART);
            at = r.end;
        }
        assert_eq!(at, size);
        assert!(parts.len() <= MAX_PARTS as usize);
    }

    #[test]
    fn part_sizes_grow_to_cover_the_cos_limit() {
        assert_eq!(stream_part_size(8 * MIB, 1), 8 * MIB);
        assert_eq!(stream_part_size(8 * MIB, 100), 8 * MIB);
        assert_eq!(stream_part_size(8 * MIB, 101), 16 * MIB);
        let first_gib: u64 = (1..=114).map(|n| stream_part_size(8 * MIB, n)).sum();
        assert!(
            first_gib >= 1024 * MIB,
            "a 1 GiB file fits in 114 parts of 8-16 MiB"
        );
        let total: u64 = (1..=MAX_PARTS).map(|n| stream_part_size(8 * MIB, n)).sum();
        assert!(total > 44 * 1024 * 1024 * MIB, "10,000 parts hold 44 TiB");
        assert!((1..=MAX_PARTS).all(|n| stream_part_size(8 * MIB, n) <= MAX_PART));
    }

    #[test]
    fn append_copies_the_old_object_and_uploads_the_tail() {
        let old = 1024 * MIB;
        let p = plan(old + 1024, &[0..old], 8 * MIB, 4 * MIB);
        check(&p, old + 1024);
        assert_eq!(
            p,
            vec![PartSource::Copy(0..old), PartSource::Data(old..old + 1024)]
        );
    }

    #[test]
    fn small_edit_in_the_middle_borrows_from_the_next_copy() {
        let size = 100 * MIB;
        let clean = [0..50 * MIB, 50 * MIB + 10..size];
        let p = plan(size, &clean, 8 * MIB, 4 * MIB);
        check(&p, size);
        assert_eq!(p[0], PartSource::Copy(0..50 * MIB));
        assert_eq!(p[1], PartSource::Data(50 * MIB..51 * MIB));
        assert_eq!(p[2], PartSource::Copy(51 * MIB..size));
    }

    #[test]
    fn short_clean_runs_become_data_and_big_files_fit_in_10000_parts() {
        let p = plan(10 * MIB, &[0..MIB], 8 * MIB, 4 * MIB);
        check(&p, 10 * MIB);
        assert!(p.iter().all(|p| matches!(p, PartSource::Data(_))));
        let huge = 40 * 1024 * 1024 * MIB;
        let p = plan(huge, &[], 8 * MIB, 4 * MIB);
        check(&p, huge);
        let p = plan(12 * 1024 * MIB, &[0..12 * 1024 * MIB], 8 * MIB, 4 * MIB);
        check(&p, 12 * 1024 * MIB);
        assert_eq!(p.len(), 3, "a 12 GiB copy is three parts of at most 5 GiB");
        assert_eq!(plan(0, &[], 8 * MIB, 4 * MIB), vec![PartSource::Data(0..0)]);
    }

    #[test]
    fn truncated_copy_and_zero_extension() {
        let p = plan(30 * MIB, &[0..20 * MIB], 8 * MIB, 4 * MIB);
        check(&p, 30 * MIB);
        assert_eq!(p[0], PartSource::Copy(0..20 * MIB));
        let p = plan(5 * MIB, &[0..5 * MIB], 8 * MIB, 4 * MIB);
        assert_eq!(p, vec![PartSource::Copy(0..5 * MIB)]);
    }
}
