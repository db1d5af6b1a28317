//! Fuzz target `mirror_request`: see [`onionpkg_fuzz::mirror_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::mirror_request(data));
