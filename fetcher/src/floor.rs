//! The DNS announcement as the appliance uses it: the check, and the floor
//! a verified record sets for what mirrors must serve (see [`crate::freeze`]).

use onionpkg_net::transport::Transport;
use onionpkg_trust::keys::RoleKeys;
use onionpkg_trust::roles;

use crate::context::App;
use crate::err::{AppError, AppResult};
use crate::freeze::Floor;
use crate::state::trusted_timestamp_version;

impl App {
    fn serial_state(&self) -> AppResult<onionpkg_announce::state::SerialState> {
        let path = self.state().announced();
        onionpkg_announce::state::SerialState::load(&path).map_err(|e| AppError::State {
            path,
            reason: e.to_string(),
        })
    }

    /// The announcement floor a mirror is held to, when announcements are
    /// configured: the newest verified record, while `keys` (the timestamp
    /// role of the newest trusted root) still vouch for the keys that
    /// signed it.
    pub fn announced_floor(&self, keys: &RoleKeys) -> AppResult<Option<Floor>> {
        let Some(a) = &self.config().announcement else {
            return Ok(None);
        };
        Ok(self
            .serial_state()?
            .floor(a.name.as_str(), &a.channel, keys)
            .map(|f| Floor {
                serial: f.serial,
                issued: f.issued,
                timestamp_hash: Some(f.timestamp_sha256),
            }))
    }

    /// The timestamp role of the newest root the store trusts; before the
    /// first update, of the pinned root.
    fn trusted_timestamp_keys(&self) -> AppResult<RoleKeys> {
        let store = self.state().metadata();
        let root = match crate::state::read_capped(&store.join("root.json"), roles::ROOT_MAX_BYTES)
        {
            Ok(bytes) => bytes,
            Err(_) => self.pinned_root()?,
        };
        let root = onionpkg_trust::metadata::check_root(&root)?;
        Ok(onionpkg_trust::metadata::role_keys(
            &root,
            roles::TIMESTAMP,
        )?)
    }

    /// Forgets the announcement floor (it lapsed: no mirror served it while
    /// the trusted metadata was valid).
    pub fn drop_announced_floor(&self) -> AppResult<()> {
        let Some(a) = &self.config().announcement else {
            return Ok(());
        };
        let path = self.state().announced();
        self.serial_state()?
            .drop_floor(a.name.as_str(), &a.channel)
            .map_err(|e| AppError::State {
                path,
                reason: e.to_string(),
            })?;
        Ok(())
    }

    /// Checks the DNS announcement, when one is configured: verified against
    /// the newest trusted root's timestamp keys, its serial persisted, its
    /// signed issue time raising the time floor.
    pub async fn check_announcement(
        &mut self,
        transport: &Transport,
    ) -> AppResult<Option<crate::announce::DnsCheck>> {
        let Some(config) = self.config().announcement.clone() else {
            return Ok(None);
        };
        let store = self.state().metadata();
        let keys = self.trusted_timestamp_keys()?;
        let trusted = trusted_timestamp_version(&store).unwrap_or(0);
        let now = self.clock().now()?;
        let mut serials = self.serial_state()?;
        let tolerance = self.clock().tolerance();
        // A bad anchors file is a configuration error, not a missing record.
        let anchors = config
            .dnssec_anchors
            .as_deref()
            .map(onionpkg_announce::load_anchors)
            .transpose()
            .map_err(|e| AppError::Usage(e.to_string()))?;
        let checked = crate::announce::check_dns(
            &config,
            anchors.as_ref(),
            transport,
            &keys,
            trusted,
            &mut serials,
            now,
            tolerance,
        )
        .await;
        if let Some(issued) = checked.issued {
            self.clock_mut().raise_floor(issued)?;
        }
        Ok(Some(checked))
    }
}
