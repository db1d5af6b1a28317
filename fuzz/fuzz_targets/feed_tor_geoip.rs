//! Fuzz target `feed_tor_geoip`: see [`onionpkg_fuzz::feed_tor_geoip`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_tor_geoip(data));
