//! Fuzz target `announce_rrset`: see [`onionpkg_fuzz::announce_rrset`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::announce_rrset(data));
