//! A multipart upload left open when a streamed overwrite turned into a staged file (see
//! `stream::keep_parts`): the parts already on COS, and which of them still hold the file's
//! bytes. Committing completes this same upload: parts nobody wrote over since they were sent
//! are listed as they are, touched or cut parts are sent again under their own number (COS
//! keeps the last upload of a part number), and bytes past the sent ones become new parts.
//! Parts past the end of a shortened file are left out of Complete, which drops them.
//!
//! Pure bookkeeping and planning; the writer does the I/O.

use std::ops::Range;

use crate::object::{PutOptions, UploadedPart};

use super::parts::plan as plan_data;

#[derive(Debug, Clone)]
pub struct SentPart {
    pub part: UploadedPart,
    pub range: Range<u64>,
    /// Still equal to the file's bytes in `range`.
    pub valid: bool,
}

#[derive(Debug, Clone)]
pub struct OpenUpload {
    pub id: String,
    /// The metadata the upload was initiated with (the object gets it at Complete).
    pub initiated_with: PutOptions,
    /// In part-number order, numbers 1..=n.
    pub parts: Vec<SentPart>,
}

/// One part of the Complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already on COS as it should be.
    Keep(UploadedPart),
    /// Upload these bytes of the file as this part number.
    Send(u32, Range<u64>),
}

impl OpenUpload {
    /// Bytes `r` of the file changed.
    pub fn touched(&mut self, r: &Range<u64>) {
        for p in &mut self.parts {
            if p.range.start < r.end && r.start < p.range.end {
                p.valid = false;
            }
        }
    }

    /// The file was cut to `size` bytes.
    pub fn cut(&mut self, size: u64) {
        for p in &mut self.parts {
            if p.range.end > size {
                p.valid = false;
            }
        }
    }

    /// The parts of a file of `size` bytes; new data parts are about `part_size` (the last
    /// sent part is at least 1 MiB, as every stream part is, so anything may follow it).
    pub fn plan(&self, size: u64, part_size: u64) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut end = 0;
        let mut number = 0;
        for p in &self.parts {
            if p.range.start >= size {
                break;
            }
            number = p.part.part_number;
            end = p.range.end.min(size);
            if p.valid && p.range.end <= size {
                steps.push(Step::Keep(p.part.clone()));
            } else {
                steps.push(Step::Send(number, p.range.start..end));
            }
        }
        if end < size {
            for d in plan_data(size - end, &[], part_size, u64::MAX) {
                let r = d.range();
                number += 1;
                steps.push(Step::Send(number, end + r.start..end + r.end));
            }
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn upload(sizes: &[u64]) -> OpenUpload {
        let mut at = 0;
        let parts = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let range = at..at + n;
                at += n;
                SentPart {
                    part: UploadedPart {
                        part_number: i as u32 + 1,
                        etag: format!("e{}", i + 1),
                        crc64: None,
                        size: Some(n),
                    },
                    range,
                    valid: true,
                }
            })
            .collect();
        OpenUpload {
            id: "u".into(),
            initiated_with: PutOptions::default(),
            parts,
        }
    }

    fn kept(s: &Step) -> bool {
        matches!(s, Step::Keep(_))
    }

    #[test]
    fn untouched_parts_are_kept_and_the_rest_sent() {
        let mut u = upload(&[8 * MIB, 8 * MIB, 8 * MIB]);
        // A header rewritten at the start, then 3 MiB more at the end.
        u.touched(&(10..20));
        let steps = u.plan(27 * MIB, 8 * MIB);
        assert_eq!(steps[0], Step::Send(1, 0..8 * MIB));
        assert!(kept(&steps[1]) && kept(&steps[2]));
        assert_eq!(steps[3], Step::Send(4, 24 * MIB..27 * MIB));
        assert_eq!(steps.len(), 4);
    }

    #[test]
    fn a_shortened_file_drops_the_parts_past_its_end() {
        let mut u = upload(&[8 * MIB, 8 * MIB, 8 * MIB]);
        u.cut(10 * MIB);
        let steps = u.plan(10 * MIB, 8 * MIB);
        assert!(kept(&steps[0]));
        assert_eq!(steps[1], Step::Send(2, 8 * MIB..10 * MIB));
        assert_eq!(steps.len(), 2);
        // Cut, then grown again past the sent parts: the cut part goes up whole.
        let steps = u.plan(30 * MIB, 8 * MIB);
        assert_eq!(steps[1], Step::Send(2, 8 * MIB..16 * MIB));
        assert_eq!(steps[2], Step::Send(3, 16 * MIB..24 * MIB));
        assert_eq!(steps[3], Step::Send(4, 24 * MIB..30 * MIB));
        assert!(upload(&[8 * MIB]).plan(0, 8 * MIB).is_empty());
    }
}
