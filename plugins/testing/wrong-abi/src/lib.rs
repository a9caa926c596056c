//! A test plugin written by hand for a future ABI version (999): the host must refuse it
//! after reading the version, before touching anything else (it has no table at all).
#![deny(missing_docs)]

/// The ABI version this library claims.
#[unsafe(no_mangle)]
pub static BOTTLE_PLUGIN_ABI_VERSION: u32 = 999;
