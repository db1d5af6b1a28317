//! The `build_epoch` of a MaxMind DB, read from its metadata: a map in the
//! format's own data encoding that follows the metadata marker near the
//! end of the file.
//!
//! A small decoder of its own rather than the `maxminddb` crate: that crate
//! opens a database only whole, in memory or memory-mapped (which needs
//! `unsafe`, forbidden in this crate), while the metadata lies in the
//! file's last 128 KiB, which is all the check reads.
//!
//! # Invariants
//! - Only the given bytes are read; every length is checked against them
//!   before use, nesting is capped at [`MAX_DEPTH`], pointers are followed
//!   once and never while skipping, and every step consumes a byte, so the
//!   work is linear in the input whatever it claims.

/// Deeper nesting than this in metadata is refused.
const MAX_DEPTH: usize = 8;

/// Data types of the MaxMind DB format (the extended ones are `7 + n`).
const POINTER: u8 = 1;
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const BYTES: u8 = 4;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const INT32: u8 = 8;
const UINT64: u8 = 9;
const UINT128: u8 = 10;
const ARRAY: u8 = 11;
const BOOLEAN: u8 = 14;
const FLOAT: u8 = 15;

/// The `build_epoch` (Unix seconds) in `meta`, the bytes after the
/// metadata marker.
pub(crate) fn build_epoch(meta: &[u8]) -> Result<u64, String> {
    let mut d = Decoder { buf: meta, pos: 0 };
    let (kind, pairs) = d.control()?;
    if kind != MAP {
        return Err("the MaxMind DB metadata is not a map".into());
    }
    for _ in 0..pairs {
        let key = d.key()?;
        if key == b"build_epoch" {
            return d.uint();
        }
        d.skip(0)?;
    }
    Err("the MaxMind DB metadata has no build_epoch".into())
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|end| *end <= self.buf.len())
            .ok_or("the MaxMind DB metadata is cut short")?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn be(&mut self, n: u64) -> Result<u64, String> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A control byte and what follows it: the type and its size (for a
    /// pointer: its target, from the start of the metadata).
    fn control(&mut self) -> Result<(u8, u64), String> {
        let b = self.be(1)? as u8;
        let mut kind = b >> 5;
        if kind == POINTER {
            let v = u64::from(b & 0x7);
            let target = match (b >> 3) & 0x3 {
                0 => (v << 8) | self.be(1)?,
                1 => 2048 + ((v << 16) | self.be(2)?),
                2 => 526_336 + ((v << 24) | self.be(3)?),
                _ => self.be(4)?,
            };
            return Ok((POINTER, target));
        }
        if kind == 0 {
            kind = 7u8.saturating_add(self.be(1)? as u8);
            if kind < 8 {
                return Err("the MaxMind DB metadata has an invalid extended type".into());
            }
        }
        let size = match u64::from(b & 0x1f) {
            29 => 29 + self.be(1)?,
            30 => 285 + self.be(2)?,
            31 => 65_821 + self.be(3)?,
            s => s,
        };
        Ok((kind, size))
    }

    /// The value at `target` instead of a pointer (pointers do not chain).
    fn at(&self, target: u64) -> Result<Self, String> {
        let pos = usize::try_from(target)
            .ok()
            .filter(|p| *p < self.buf.len())
            .ok_or("a MaxMind DB metadata pointer points past the metadata")?;
        Ok(Self { buf: self.buf, pos })
    }

    fn key(&mut self) -> Result<&'a [u8], String> {
        match self.control()? {
            (STRING, size) => self.take(size),
            (POINTER, target) => match self.at(target)?.control_and_take()? {
                (STRING, bytes) => Ok(bytes),
                _ => Err("a MaxMind DB metadata key is not a string".into()),
            },
            _ => Err("a MaxMind DB metadata key is not a string".into()),
        }
    }

    fn control_and_take(mut self) -> Result<(u8, &'a [u8]), String> {
        let (kind, size) = self.control()?;
        if kind == POINTER {
            return Err("a MaxMind DB metadata pointer points to a pointer".into());
        }
        Ok((kind, self.take(size)?))
    }

    fn uint(&mut self) -> Result<u64, String> {
        let (kind, bytes) = match self.control()? {
            (POINTER, target) => self.at(target)?.control_and_take()?,
            (kind, size) => (kind, self.take(size)?),
        };
        if !matches!(kind, UINT16 | UINT32 | UINT64 | UINT128) || bytes.len() > 8 {
            return Err("the MaxMind DB build_epoch is not an unsigned integer".into());
        }
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn skip(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("the MaxMind DB metadata is nested too deep".into());
        }
        match self.control()? {
            (POINTER | BOOLEAN, _) => Ok(()),
            (
                STRING | DOUBLE | BYTES | UINT16 | UINT32 | INT32 | UINT64 | UINT128 | FLOAT,
                size,
            ) => self.take(size).map(|_| ()),
            (MAP, pairs) => {
                for _ in 0..pairs {
                    self.skip(depth + 1)?;
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            (ARRAY, items) => {
                for _ in 0..items {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            (kind, _) => Err(format!(
                "the MaxMind DB metadata has a value of type {kind}, which metadata never holds"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feeds::check::MMDB_MARKER;
    use onionpkg_testkit::testdata;

    fn meta_of(db: &[u8]) -> &[u8] {
        let at = db
            .windows(MMDB_MARKER.len())
            .rposition(|w| w == MMDB_MARKER)
            .unwrap();
        &db[at + MMDB_MARKER.len()..]
    }

    #[test]
    fn reads_the_build_epoch() {
        let db = testdata::mmdb_built_at(1_700_000_123);
        assert_eq!(build_epoch(meta_of(&db)), Ok(1_700_000_123));
        // A uint32, and a key reached through a pointer to a string.
        let mut meta = vec![0xe2]; // a map of 2
        meta.extend_from_slice(b"\x44name\x44test"); // name: "test"
        meta.extend_from_slice(b"\x20\x01"); // a pointer to offset 1: "name"
        meta.extend_from_slice(b"\x42ok"); // "ok"
        assert_eq!(
            build_epoch(&meta),
            Err("the MaxMind DB metadata has no build_epoch".into())
        );
        let mut meta = vec![0xe1, 0x4b];
        meta.extend_from_slice(b"build_epoch\xc4\x65\x53\xf1\x00");
        assert_eq!(build_epoch(&meta), Ok(0x6553_f100));
    }

    #[test]
    fn refuses_broken_metadata() {
        let db = testdata::mmdb();
        let meta = meta_of(&db);
        for n in 0..meta.len() {
            // Every cut before build_epoch's value ends fails, never panics.
            let _ = build_epoch(&meta[..n]);
        }
        assert!(build_epoch(&meta[..40]).unwrap_err().contains("cut short"));
        assert!(build_epoch(b"\x44name").unwrap_err().contains("not a map"));
        // build_epoch as a string.
        let e = build_epoch(b"\xe1\x4bbuild_epoch\x42no").unwrap_err();
        assert!(e.contains("not an unsigned integer"), "{e}");
        // Deeply nested arrays.
        let mut deep = b"\xe2\x41a".to_vec();
        deep.extend(std::iter::repeat_n([0x01, 0x04], 20).flatten());
        let e = build_epoch(&deep).unwrap_err();
        assert!(e.contains("nested too deep"), "{e}");
        // A map claiming millions of pairs in a few bytes.
        let e = build_epoch(b"\xff\xff\xff\xff").unwrap_err();
        assert!(e.contains("cut short"), "{e}");
    }
}
