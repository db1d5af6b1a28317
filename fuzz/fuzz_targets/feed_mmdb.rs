//! Fuzz target `feed_mmdb`: see [`onionpkg_fuzz::feed_mmdb`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_mmdb(data));
