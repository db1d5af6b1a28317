//! onionpkg-repo (to be written).

fn main() {}
