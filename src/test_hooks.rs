//! Hooks for bottle's own fault tests, read from the environment of `bottle up`. None is
//! set in normal use, and each can only make a bottle smaller than its plan, never more
//! open: they exist so the suite can bring about a failure on a real engine without
//! harming the machine it runs on.

use anyhow::{bail, Context as _};
use bottle_core::gate::GateLayout;
use bottle_core::plan::{Plan, WritableOn};

/// `BOTTLE_TEST_GATE_MIRRORS_TMPFS=SIZE` (e.g. `8m`): the gate keeps its mirrors on a
/// tmpfs of SIZE instead of the engine's disk, so a push can fill the gate's disk
/// (docs/security.md, "When parts fail") while the machine's stays free.
pub const GATE_MIRRORS_TMPFS: &str = "BOTTLE_TEST_GATE_MIRRORS_TMPFS";

/// Applies the hooks set in the environment to `plan`.
pub fn apply(plan: &mut Plan) -> anyhow::Result<()> {
    let Some(size) = std::env::var_os(GATE_MIRRORS_TMPFS) else {
        return Ok(());
    };
    let size = size.to_string_lossy();
    let bytes = bottle_core::manifest::parse_memory(&size)
        .and_then(|b| u64::try_from(b).ok())
        .with_context(|| {
            format!("{GATE_MIRRORS_TMPFS}={size:?} is not a size: use e.g. 8m, or unset it")
        })?;
    let mirrors = GateLayout::container().repos_dir();
    let Some(gate) = plan
        .containers
        .iter_mut()
        .find(|c| c.role.as_str() == bottle_core::gate::NAME)
    else {
        bail!(
            "{GATE_MIRRORS_TMPFS} is set, but bottle {} has no gate",
            plan.bottle
        );
    };
    let place = gate
        .hardening
        .read_only_root
        .iter_mut()
        .flatten()
        .find(|w| w.path == mirrors)
        .with_context(|| format!("the gate's plan has no writable {mirrors}"))?;
    place.on = WritableOn::Memory { bytes };
    Ok(())
}
