//! Integration tests: the real sidecars, in-process, on loopback only.

mod common;
mod cred;
mod egress;
mod hickory;
