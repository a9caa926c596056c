//! A working test plugin, backend `test-good`: echoes each request on stdout so tests can
//! see what crossed the boundary, and fails on request (slug `fail`) so tests can see
//! errors cross it too.
#![deny(missing_docs)]

use bottle_core::backend::{BackendError, BottleStatus, ExecRequest, Resource, Scope, UpOptions};
use bottle_core::plan::{FileSource, Plan, ResourceKind};
use bottle_plugin::{export_backend, PluginBackend};

struct Good;

impl PluginBackend for Good {
    const NAME: &'static str = "test-good";
    const ABOUT: &'static str = "a test plugin that echoes what it is asked";

    fn open() -> Result<Self, BackendError> {
        Ok(Good)
    }

    fn up(&self, plan: &Plan, opts: &UpOptions) -> Result<(), BackendError> {
        if plan.slug == "fail" {
            return Err(BackendError::Engine {
                action: "create pod bottle-fail-agent".to_owned(),
                message: "the test plugin refuses slug 'fail'".to_owned(),
            });
        }
        let secret_bytes: usize = plan
            .containers
            .iter()
            .flat_map(|c| &c.files)
            .filter(|f| matches!(f.source, FileSource::HostFile { .. }))
            .map(|f| f.bytes().len())
            .sum();
        let names: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
        println!(
            "test-good: up {} containers=[{}] networks={} secret-bytes={} keep-on-failure={}",
            plan.slug,
            names.join(","),
            plan.networks.len(),
            secret_bytes,
            opts.keep_on_failure
        );
        Ok(())
    }

    fn down(&self, scope: &Scope) -> Result<(), BackendError> {
        let slug = scope.bottle.as_deref().unwrap_or_default();
        if slug == "fail" {
            return Err(BackendError::NotRunning {
                slug: slug.to_owned(),
                role: "agent".into(),
            });
        }
        println!(
            "test-good: down {slug} of {}",
            scope.project.as_deref().unwrap_or("every project")
        );
        Ok(())
    }

    fn ps(&self, scope: &Scope) -> Result<Vec<BottleStatus>, BackendError> {
        let slug = scope.bottle.as_deref().unwrap_or("everything");
        Ok(vec![BottleStatus {
            project: scope.project.clone(),
            slug: slug.to_owned(),
            resources: vec![Resource {
                kind: ResourceKind::Container,
                name: format!("bottle-{slug}-agent"),
                role: Some("agent".into()),
                state: "running".to_owned(),
                restarts: None,
            }],
        }])
    }

    fn cleanup(&self, scope: &Scope) -> Result<Vec<Resource>, BackendError> {
        Ok(scope
            .bottle
            .as_deref()
            .map(|s| Resource {
                kind: ResourceKind::Network,
                name: format!("bottle-{s}-internal"),
                role: Some("internal".into()),
                state: String::new(),
                restarts: None,
            })
            .into_iter()
            .collect())
    }

    fn exec(&self, request: &ExecRequest) -> Result<i32, BackendError> {
        if request.slug == "stopped" {
            return Err(BackendError::NotRunning {
                slug: request.slug.clone(),
                role: "agent".into(),
            });
        }
        println!(
            "test-good: exec {} tty={} {:?}",
            request.slug, request.tty, request.command
        );
        Ok(3)
    }
}

export_backend!(Good);
