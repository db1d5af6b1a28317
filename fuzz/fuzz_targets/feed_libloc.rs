//! Fuzz target `feed_libloc`: see [`onionpkg_fuzz::feed_libloc`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_libloc(data));
