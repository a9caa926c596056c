//! A test plugin exporting the right ABI version but no function table: the host must
//! report the missing symbol.
#![deny(missing_docs)]

/// The ABI version this library claims: the current one.
#[unsafe(no_mangle)]
pub static BOTTLE_PLUGIN_ABI_VERSION: u32 = 2;
