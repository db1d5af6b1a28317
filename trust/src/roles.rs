//! The onionpkg role layout (to be written).
