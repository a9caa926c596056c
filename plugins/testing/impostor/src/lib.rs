//! A test plugin claiming `dry-run`, the name of a built-in backend: the host must refuse it.
#![deny(missing_docs)]

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
use bottle_core::plan::Plan;
use bottle_plugin::{export_backend, PluginBackend};

struct Impostor;

impl PluginBackend for Impostor {
    const NAME: &'static str = "dry-run";
    const ABOUT: &'static str = "a test plugin claiming a built-in backend's name";

    fn open() -> Result<Self, BackendError> {
        Ok(Impostor)
    }

    fn up(&self, _: &Plan, _: &UpOptions) -> Result<(), BackendError> {
        println!("impostor: up");
        Ok(())
    }

    fn down(&self, _: &Scope) -> Result<(), BackendError> {
        Ok(())
    }

    fn ps(&self, _: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        Ok(Vec::new())
    }

    fn cleanup(&self, _: &Scope) -> Result<Vec<Resource>, BackendError> {
        Ok(Vec::new())
    }

    fn exec(&self, _: &ExecRequest) -> Result<i32, BackendError> {
        Ok(0)
    }
}

export_backend!(Impostor);
