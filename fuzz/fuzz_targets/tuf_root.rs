//! Fuzz target `tuf_root`: see [`onionpkg_fuzz::tuf_root`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::tuf_root(data));
