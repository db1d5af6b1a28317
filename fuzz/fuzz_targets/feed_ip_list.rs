//! Fuzz target `feed_ip_list`: see [`onionpkg_fuzz::feed_ip_list`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_ip_list(data));
