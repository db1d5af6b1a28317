//! Fuzz target `feed_checksum`: see [`onionpkg_fuzz::feed_checksum`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_checksum(data));
