//! Fuzz target `feed_signature`: see [`onionpkg_fuzz::feed_signature`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_signature(data));
