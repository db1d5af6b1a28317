//! Private keys and signing (to be written).
