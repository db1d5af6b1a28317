//! Fuzz target `tuf_client`: see [`onionpkg_fuzz::tuf_client`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::tuf_client(data));
