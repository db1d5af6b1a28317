//! python-tuf interop (to be written).
