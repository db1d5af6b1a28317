//! The release side of onionpkg (to be written).
