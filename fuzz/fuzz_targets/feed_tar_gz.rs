//! Fuzz target `feed_tar_gz`: see [`onionpkg_fuzz::feed_tar_gz`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onionpkg_fuzz::feed_tar_gz(data));
