//! Fuzz target `http_response`: see [`onionpkg_fuzz::http_response`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::http_response(data));
