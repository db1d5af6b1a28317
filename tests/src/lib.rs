//! Shared helpers for the end-to-end tests (and later the private Tor network harness).
