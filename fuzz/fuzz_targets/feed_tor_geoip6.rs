//! Fuzz target `feed_tor_geoip6`: see [`onionpkg_fuzz::feed_tor_geoip6`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_tor_geoip6(data));
