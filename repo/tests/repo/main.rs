//! Integration tests of the release side and the trust layer together: a
//! repository made by `onionpkg-repo`, attacked and verified as a client would.

mod attacks;
mod cli;
mod interop;
mod util;
