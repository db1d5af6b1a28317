//! Fuzz target `mirror_list`: see [`onionpkg_fuzz::mirror_list`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::mirror_list(data));
