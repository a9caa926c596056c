//! A test plugin, backend `test-panic`, that loads fine and panics in every operation: the
//! host must report each panic as an error and carry on.
#![deny(missing_docs)]

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
use bottle_core::plan::Plan;
use bottle_plugin::{export_backend, PluginBackend};

struct Panicking;

impl PluginBackend for Panicking {
    const NAME: &'static str = "test-panic";
    const ABOUT: &'static str = "a test plugin that panics in every operation";

    fn open() -> Result<Self, BackendError> {
        Ok(Panicking)
    }

    fn up(&self, plan: &Plan, _: &UpOptions) -> Result<(), BackendError> {
        panic!("test-panic: boom in up of {}", plan.slug)
    }

    fn down(&self, scope: &Scope) -> Result<(), BackendError> {
        panic!("test-panic: boom in down of {}", scope.describe())
    }

    fn ps(&self, _: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        // A non-string payload.
        std::panic::panic_any(42_u32)
    }

    fn cleanup(&self, _: &Scope) -> Result<Vec<Resource>, BackendError> {
        panic!("test-panic: boom in cleanup")
    }

    fn exec(&self, _: &ExecRequest) -> Result<i32, BackendError> {
        panic!("test-panic: boom in exec")
    }
}

export_backend!(Panicking);
