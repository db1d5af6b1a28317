//! Fuzz target `config`: see [`onionpkg_fuzz::config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::config(data));
