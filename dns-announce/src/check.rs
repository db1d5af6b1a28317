//! Checking an announcement: verification against the pinned root, and what
//! it means for an appliance.
//!
//! # Invariants
//! - Records are verified with the trust layer's
//!   [`verify_rrset`](onionpkg_trust::announce::verify_rrset): timestamp-role
//!   signatures over this owner name, this channel, not expired, not issued
//!   in the future, not below the highest serial seen.
//! - [`AnnouncementState::UpToDate`] (the only state that lets an appliance
//!   skip contacting mirrors) comes only from a verified record whose serial
//!   equals the version the appliance already trusts. Every other outcome,
//!   including a missing or invalid record, means "ask the mirrors": an
//!   attacker who suppresses or forges records can at most cause polling,
//!   and one who replays a genuine record can freeze an appliance at most
//!   until that record expires.

use std::path::Path;

use onionpkg_trust::announce::{self, AnnounceError, Announcement};
use onionpkg_trust::keys::RoleKeys;
use onionpkg_trust::roles::TIMESTAMP;

use crate::err::{Error, Result};

/// What an announcement means to an appliance that trusts a timestamp
/// version.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnnouncementState {
    /// The announced serial is the trusted timestamp version: nothing to do.
    UpToDate {
        /// The serial.
        serial: u64,
    },
    /// A newer timestamp is announced: fetch it from the mirrors.
    UpdateAvailable {
        /// The announced serial.
        serial: u64,
        /// The version trusted so far.
        trusted: u64,
    },
    /// No announcement at the name: ask the mirrors.
    NoAnnouncement,
    /// The announcement is refused (bad signature, other name or channel,
    /// expired, older than the trusted version): ask the mirrors.
    Invalid(AnnounceError),
}

impl AnnouncementState {
    /// Compares a verified announcement with the timestamp version trusted.
    ///
    /// A serial below the trusted version is a replay (or a publisher that
    /// stopped announcing) and gives [`AnnouncementState::Invalid`] with
    /// [`AnnounceError::Rollback`].
    pub fn compare(verified: &Announcement, trusted_timestamp_version: u64) -> Self {
        let (serial, trusted) = (verified.serial, trusted_timestamp_version);
        match serial.cmp(&trusted) {
            std::cmp::Ordering::Equal => Self::UpToDate { serial },
            std::cmp::Ordering::Greater => Self::UpdateAvailable { serial, trusted },
            std::cmp::Ordering::Less => Self::Invalid(AnnounceError::Rollback {
                serial,
                last_seen: trusted,
            }),
        }
    }

    /// The state for the outcome of a verification.
    pub fn from_result(
        result: std::result::Result<Announcement, AnnounceError>,
        trusted_timestamp_version: u64,
    ) -> Self {
        match result {
            Ok(a) => Self::compare(&a, trusted_timestamp_version),
            Err(AnnounceError::NoRecord) => Self::NoAnnouncement,
            Err(e) => Self::Invalid(e),
        }
    }

    /// Whether the appliance may skip contacting the mirrors.
    pub fn may_skip_mirrors(&self) -> bool {
        matches!(self, Self::UpToDate { .. })
    }

    /// A short name: `up-to-date`, `update-available`, `no-announcement`,
    /// `invalid`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UpToDate { .. } => "up-to-date",
            Self::UpdateAvailable { .. } => "update-available",
            Self::NoAnnouncement => "no-announcement",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// The keys and threshold of the timestamp role in the root file at `path`,
/// after checking that the root is signed by its own threshold.
pub fn timestamp_keys_of_root(path: &Path) -> Result<RoleKeys> {
    let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
    let root_err = |source| Error::Root {
        path: path.to_path_buf(),
        source,
    };
    let root = onionpkg_trust::metadata::check_root(&bytes).map_err(root_err)?;
    onionpkg_trust::metadata::role_keys(&root, TIMESTAMP).map_err(root_err)
}

pub use onionpkg_trust::announce::Expectation;

/// Verifies the TXT records found at a name (as [`crate::query`] returns
/// them) and returns the newest valid announcement.
pub fn verify_records(
    records: &[String],
    expect: &Expectation<'_>,
) -> std::result::Result<Announcement, AnnounceError> {
    announce::verify_rrset(records, expect)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use onionpkg_trust::clock::Tolerance;

    fn verified(serial: u64) -> Announcement {
        use onionpkg_trust::sign::SecretKey;
        let key = SecretKey::generate();
        let keys = RoleKeys::new(
            [(key.public().key_id(), key.public())]
                .into_iter()
                .collect(),
            1,
        );
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let later = Timestamp::from_second(1_800_086_400).unwrap();
        let text = announce::make(
            "_u.example.org",
            "stable",
            serial,
            now,
            later,
            &[7; 32],
            &[&key],
        )
        .unwrap();
        announce::verify(
            &text,
            &Expectation {
                name: "_u.example.org",
                channel: "stable",
                keys: &keys,
                now,
                tolerance: Tolerance::ZERO,
                last_seen: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn compares_serials() {
        let a = verified(5);
        assert!(matches!(
            AnnouncementState::compare(&a, 5),
            AnnouncementState::UpToDate { serial: 5 }
        ));
        assert!(AnnouncementState::compare(&a, 5).may_skip_mirrors());
        assert!(matches!(
            AnnouncementState::compare(&a, 4),
            AnnouncementState::UpdateAvailable {
                serial: 5,
                trusted: 4
            }
        ));
        let older = AnnouncementState::compare(&a, 6);
        assert!(matches!(
            older,
            AnnouncementState::Invalid(AnnounceError::Rollback {
                serial: 5,
                last_seen: 6
            })
        ));
        assert!(!older.may_skip_mirrors());
    }

    #[test]
    fn failures_never_skip_the_mirrors() {
        let none = AnnouncementState::from_result(Err(AnnounceError::NoRecord), 3);
        assert!(matches!(none, AnnouncementState::NoAnnouncement));
        assert!(!none.may_skip_mirrors());
        let bad = AnnouncementState::from_result(Err(AnnounceError::NotAnnouncement), 3);
        assert_eq!(bad.name(), "invalid");
        assert!(!bad.may_skip_mirrors());
        let ok = AnnouncementState::from_result(Ok(verified(3)), 3);
        assert_eq!(ok.name(), "up-to-date");
    }
}
