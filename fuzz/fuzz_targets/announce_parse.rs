//! Fuzz target `announce_parse`: see [`onionpkg_fuzz::announce_parse`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::announce_parse(data));
