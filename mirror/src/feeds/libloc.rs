//! IPFire's location database (libloc's `location.db`, format version 1),
//! checked as libloc checks it: its embedded signature verified against the
//! publisher's key, and its `created_at` as the version's time.
//!
//! The layout (libloc's `format.h`, all integers big-endian): 8 bytes of
//! magic (`LOCDBXX` and the version), then a 4192-byte header: `created_at`
//! (u64), the string-pool offsets of vendor, description and license, the
//! offset and length of the AS, network, network-tree, country and
//! string-pool sections (u32 each), two signature lengths (u16), two
//! signature slots of 2048 bytes, 32 bytes of padding; then the sections.
//!
//! A signature is ECDSA over SHA-256 (OpenSSL's default digest for EC keys,
//! which `loc_database_verify` uses) of the whole file with both signature
//! slots and both lengths zeroed, DER-encoded. The first signature is tried,
//! then the second (the second slot lets a publisher sign with a new key
//! beside the old one). IPFire signs with a P-521 key; that is the key type
//! verified here.
//!
//! # Invariants
//! - Nothing in the file is taken at its word before the signature
//!   verified: the `created_at` returned is covered by the signature.
//! - Every section the header names lies inside the file, so libloc never
//!   maps past its end; a signature length is at most 2048.
//! - The file is read once, in chunks, and never held in memory whole.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use jiff::Timestamp;
use p521::ecdsa::signature::hazmat::PrehashVerifier as _;
use p521::ecdsa::{Signature, VerifyingKey};
use p521::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};

use super::check::Checked;
use super::floor::{TimeSource, VersionTime};

/// The magic at the start of every libloc database, before the version byte.
pub const MAGIC: &[u8; 7] = b"LOCDBXX";
/// The only format version there is.
const VERSION_1: u8 = 1;
/// Magic and version.
const MAGIC_LEN: usize = 8;
/// `struct loc_database_header_v1`.
const HEADER_LEN: usize = 4192;
/// Where the signature lengths start in the header.
const SIG_LENGTHS_AT: usize = 60;
/// Where the first signature slot starts in the header.
const SIG1_AT: usize = 64;
/// One signature slot.
const SIG_SLOT: usize = 2048;
/// The longest key file read.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// A publisher's key for libloc signatures (ECDSA P-521).
#[derive(Clone)]
pub struct LiblocKey(VerifyingKey);

impl std::fmt::Debug for LiblocKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiblocKey(P-521)")
    }
}

impl LiblocKey {
    /// Reads a PEM public key (`-----BEGIN PUBLIC KEY-----`), such as IPFire's
    /// `/var/lib/location/signing-key.pem`; text around the PEM block (that
    /// file starts with a note on who made the key) is ignored.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let fail = |e: &dyn std::fmt::Display| format!("libloc key {}: {e}", path.display());
        let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE)
            .read_to_string(&mut text)
            .map_err(|e| fail(&e))?;
        Self::from_pem(&text).map_err(|e| fail(&e))
    }

    /// Parses the first `PUBLIC KEY` PEM block in `text`.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let start = text.find(BEGIN).ok_or("no PEM public key in it")?;
        let end = text[start..]
            .find(END)
            .map(|e| start + e + END.len())
            .ok_or("the PEM public key has no end line")?;
        let key = p521::PublicKey::from_public_key_pem(&text[start..end]).map_err(|e| {
            format!(
                "not an ECDSA P-521 (secp521r1) public key, which libloc databases are signed \
                 with: {e}"
            )
        })?;
        Ok(Self(
            VerifyingKey::from_affine(*key.as_affine()).map_err(|e| e.to_string())?,
        ))
    }

    fn verifies(&self, digest: &[u8; 32], der: &[u8]) -> bool {
        let Ok(sig) = Signature::from_der(der) else {
            return false;
        };
        // ECDSA reads a digest shorter than the curve's order as the number
        // it spells: zeros on the left give the same number in the field's
        // width, which is what the verifier takes.
        let mut wide = [0u8; 66];
        wide[66 - 32..].copy_from_slice(digest);
        self.0.verify_prehash(&wide, &sig).is_ok()
    }
}

/// What the header says, before anything is verified.
#[derive(Debug)]
struct Header {
    created_at: u64,
    vendor: u32,
    sections: [(&'static str, u32, u32); 5],
    sig_lengths: [usize; 2],
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_header(head: &[u8; MAGIC_LEN + HEADER_LEN], len: u64) -> Result<Header, String> {
    if &head[..7] != MAGIC {
        return Err("not a libloc database: no LOCDBXX magic".into());
    }
    if head[7] != VERSION_1 {
        return Err(format!(
            "libloc database format version {} is not supported (only 1)",
            head[7]
        ));
    }
    let h = &head[MAGIC_LEN..];
    let mut created = [0u8; 8];
    created.copy_from_slice(&h[..8]);
    let section = |name, at| (name, be32(h, at), be32(h, at + 4));
    let header = Header {
        created_at: u64::from_be_bytes(created),
        vendor: be32(h, 8),
        sections: [
            section("AS", 20),
            section("network", 28),
            section("network tree", 36),
            section("country", 44),
            section("string pool", 52),
        ],
        sig_lengths: [
            usize::from(u16::from_be_bytes([
                h[SIG_LENGTHS_AT],
                h[SIG_LENGTHS_AT + 1],
            ])),
            usize::from(u16::from_be_bytes([
                h[SIG_LENGTHS_AT + 2],
                h[SIG_LENGTHS_AT + 3],
            ])),
        ],
    };
    for (name, offset, length) in header.sections {
        let end = u64::from(offset) + u64::from(length);
        if length > 0 && (u64::from(offset) < (MAGIC_LEN + HEADER_LEN) as u64 || end > len) {
            return Err(format!(
                "the {name} section ({length} bytes at {offset}) lies outside the file's \
                 {len} bytes"
            ));
        }
    }
    if let Some(n) = header.sig_lengths.iter().find(|n| **n > SIG_SLOT) {
        return Err(format!(
            "a signature length of {n} bytes, more than the slot's {SIG_SLOT}"
        ));
    }
    if header.sig_lengths == [0, 0] {
        return Err("the database is not signed".into());
    }
    Ok(header)
}

/// Checks the libloc database at `path` against `key`.
pub fn check(path: &Path, key: &LiblocKey) -> Result<Checked, String> {
    let read_err = |e: std::io::Error| format!("cannot read the download: {e}");
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let mut head = [0u8; MAGIC_LEN + HEADER_LEN];
    if len < head.len() as u64 {
        return Err(format!(
            "{len} bytes: too short for a libloc database header"
        ));
    }
    file.read_exact(&mut head).map_err(read_err)?;
    let header = parse_header(&head, len)?;
    let mut sigs = Vec::new();
    for (slot, n) in header.sig_lengths.iter().enumerate() {
        let at = MAGIC_LEN + SIG1_AT + slot * SIG_SLOT;
        if *n > 0 {
            sigs.push(head[at..at + n].to_vec());
        }
    }
    // What was signed: the file with both signatures and their lengths zeroed.
    let mut signed = head;
    signed[MAGIC_LEN + SIG_LENGTHS_AT..MAGIC_LEN + SIG1_AT + 2 * SIG_SLOT].fill(0);
    let mut hasher = Sha256::new();
    hasher.update(signed);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest: [u8; 32] = hasher.finalize().into();
    let Some(which) = sigs.iter().position(|sig| key.verifies(&digest, sig)) else {
        return Err(format!(
            "the database's signature{} does not verify against the configured libloc_key",
            if sigs.len() > 1 { "s" } else { "" }
        ));
    };
    // Only now is the header the publisher's.
    let time = i64::try_from(header.created_at)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .ok_or_else(|| {
            format!(
                "the database's created_at {} is not a usable time",
                header.created_at
            )
        })?;
    let vendor = read_pool_string(&mut file, &header, header.vendor);
    let count = |i: usize, size: u32| header.sections[i].2 / size;
    Ok(Checked {
        summary: format!(
            "libloc database{}, created {time}, {} networks, {} ASes, {} countries, \
             signature {} verified",
            vendor.map(|v| format!(" by {v}")).unwrap_or_default(),
            count(1, 12),
            count(0, 8),
            count(3, 8),
            which + 1,
        ),
        made: Some(VersionTime {
            time,
            from: TimeSource::LiblocCreatedAt,
        }),
    })
}

/// A NUL-terminated string of at most 100 bytes at `offset` in the string
/// pool, for the summary; `None` when there is none.
fn read_pool_string(file: &mut std::fs::File, header: &Header, offset: u32) -> Option<String> {
    let (_, pool_at, pool_len) = header.sections[4];
    if offset >= pool_len {
        return None;
    }
    file.seek(SeekFrom::Start(u64::from(pool_at) + u64::from(offset)))
        .ok()?;
    let mut bytes = Vec::new();
    file.take(u64::from((pool_len - offset).min(100)))
        .read_to_end(&mut bytes)
        .ok()?;
    let end = bytes.iter().position(|b| *b == 0)?;
    let s: String = String::from_utf8_lossy(&bytes[..end])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_p521_public_keys() {
        let ipfire = "Created: Dec 10, 2019 by Michael Tremer\n\
            Algorithm: NIST/SECG curve over a 521 bit prime field (secp521r1)\n\
            -----BEGIN PUBLIC KEY-----\n\
            MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB1PzZdV9DE59LVCdXy/9cRgvTy9lx\n\
            L5tV10awZDilwQ9GR8x/irJE8ctGSnZ5HgbOk+gilurmC5JlJmTjZrW7tt8Awiu8\n\
            ir3y2n7XXyiVGIzTHrA6Tw7SG+H9LzuIl0wCg6s6svnXVDyho7b0tSZPUGKMI28q\n\
            CUXef0jvZ9+ncTiJh1w=\n\
            -----END PUBLIC KEY-----\n";
        LiblocKey::from_pem(ipfire).unwrap();
        // A P-256 key is refused by name.
        let p256 = "-----BEGIN PUBLIC KEY-----\n\
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE0rzgrh+Ith39XBzuZTluK/HMnn5p\n\
            bmxPpBly14+8+c43LAqgZvm2opTcfIL6HOl32l43a/MvLPAbfIJRLP/nzQ==\n\
            -----END PUBLIC KEY-----\n";
        let e = LiblocKey::from_pem(p256).unwrap_err();
        assert!(e.contains("not an ECDSA P-521"), "{e}");
        let e = LiblocKey::from_pem("hello").unwrap_err();
        assert!(e.contains("no PEM public key"), "{e}");
    }

    #[test]
    fn headers_are_bounded() {
        let mut head = [0u8; MAGIC_LEN + HEADER_LEN];
        head[..7].copy_from_slice(MAGIC);
        head[7] = 1;
        let len = 100_000;
        // Unsigned.
        let e = parse_header(&head, len).unwrap_err();
        assert!(e.contains("not signed"), "{e}");
        head[MAGIC_LEN + SIG_LENGTHS_AT + 1] = 10;
        parse_header(&head, len).unwrap();
        // A section past the end of the file.
        head[MAGIC_LEN + 52..MAGIC_LEN + 56].copy_from_slice(&90_000u32.to_be_bytes());
        head[MAGIC_LEN + 56..MAGIC_LEN + 60].copy_from_slice(&20_000u32.to_be_bytes());
        let e = parse_header(&head, len).unwrap_err();
        assert!(e.contains("string pool section"), "{e}");
        head[MAGIC_LEN + 56..MAGIC_LEN + 60].copy_from_slice(&0u32.to_be_bytes());
        // A signature longer than its slot.
        head[MAGIC_LEN + SIG_LENGTHS_AT..MAGIC_LEN + SIG_LENGTHS_AT + 2]
            .copy_from_slice(&2049u16.to_be_bytes());
        let e = parse_header(&head, len).unwrap_err();
        assert!(e.contains("2049"), "{e}");
        head[7] = 2;
        let e = parse_header(&head, len).unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        head[0] = b'X';
        let e = parse_header(&head, len).unwrap_err();
        assert!(e.contains("magic"), "{e}");
    }
}
