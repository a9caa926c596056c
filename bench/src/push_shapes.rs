//! Pushes of other shapes than push_scan's 500 commits, with push_scan's baseline rule:
//! bottle's side is `git push` in the agent through the gate (scan, then forward over
//! ssh); the baseline is what a user would otherwise do over the same commits, in the
//! direct client, gitleaks alone and then a direct push to the upstream.
//!
//! | measure | the push |
//! |---|---|
//! | push_large | one commit adding a 32 MiB binary file of random bytes |
//! | push_merge | an octopus merge of 16 branches, each editing 15 of the tree's 240 text files |
//!
//! These shapes came from gate-scan/bench/push-bench.sh, which pushes into a local bare
//! repository with the hook (no containers, no forward); here they go through a bottle.

use anyhow::bail;

use crate::cmd::{exec_ok, exec_timed};
use crate::ctx::Ctx;
use crate::git::{paired_round, World};
use crate::results::{Measure, Target};
use crate::STEP;

/// The large file's size.
const LARGE_BYTES: usize = 32 << 20;
/// The wide merge: branches, and files each edits.
const MERGE_BRANCHES: usize = 16;
const MERGE_FILES_PER_BRANCH: usize = 15;
/// The same gitleaks invocation as push_scan's baseline.
const GITLEAKS: &str = "gitleaks git --no-banner --no-color --redact --verbose \
                        --ignore-gitleaks-allow --platform none";

pub(crate) fn measure_push_large(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
    let mb = LARGE_BYTES >> 20;
    let m = Measure::new(
        "push_large",
        &format!(
            "git push of one commit adding a {mb} MiB random binary file, in the agent, through the gate (scan, then forward)"
        ),
        "gitleaks over that commit, then git push straight to the upstream",
        Target::Ratio(1.1),
    );
    measure_shape(ctx, w, m, "large", 1000, |branch, seed| {
        w.generated.large_binary_stream(branch, seed, LARGE_BYTES)
    })
}

pub(crate) fn measure_push_merge(ctx: &Ctx, w: &World) -> anyhow::Result<Measure> {
    let (b, f) = (MERGE_BRANCHES, MERGE_FILES_PER_BRANCH);
    let m = Measure::new(
        "push_merge",
        &format!(
            "git push of an octopus merge of {b} branches, each editing {f} text files, in the agent, through the gate (scan, then forward)"
        ),
        &format!("gitleaks over the same {} commits, then git push straight to the upstream", b + 1),
        Target::Ratio(1.1),
    );
    measure_shape(ctx, w, m, "merge", 2000, |branch, seed| {
        w.generated.wide_merge_stream(branch, seed, b, f)
    })
}

/// Times pushes of the commits `stream` makes (a warm-up, then `ctx.runs`), bottle's way
/// and the baseline alternately, the order flipping from run to run. Every run pushes
/// commits new to both upstreams (`seed_base + k` seeds the k-th set).
fn measure_shape(
    ctx: &Ctx,
    w: &World,
    mut m: Measure,
    shape: &str,
    seed_base: u64,
    stream: impl Fn(&str, u64) -> Vec<u8>,
) -> anyhow::Result<Measure> {
    let base = &w.generated.tip;
    for k in 0..=ctx.runs {
        let run = if k == 0 {
            "warm-up".to_owned()
        } else {
            format!("run {k}")
        };
        eprintln!("  {}: {run}", m.name);
        // The same commits in the agent's clone and the direct client's: fast-import from
        // one stream, checked by their ids.
        let branch = format!("bench-{shape}-{k}");
        let data = stream(&branch, seed_base + k as u64);
        let script = format!(
            "git -C \"$HOME/c\" fast-import --quiet && git -C \"$HOME/c\" rev-parse refs/heads/{branch}"
        );
        let tip = exec_ok(&w.agent, &script, Some(data.clone()), STEP)?;
        let direct_tip = exec_ok(&w.direct, &script, Some(data), STEP)?;
        if tip != direct_tip {
            bail!("the generated commits differ between the agent ({tip}) and the direct client ({direct_tip})");
        }
        let refspec = format!("refs/heads/{branch}:refs/heads/bench/{shape}-{k}");
        let through_gate = || {
            exec_timed(
                &w.agent,
                &format!("git -C \"$HOME/c\" push -q origin {refspec}"),
                STEP,
            )
        };
        let direct = || {
            exec_timed(
                &w.direct,
                &format!(
                    "cd \"$HOME/c\" && {GITLEAKS} --log-opts=\"{tip} --not {base}\" . && \
                     git push -q {url} {refspec}",
                    url = w.direct_url
                ),
                STEP,
            )
        };
        paired_round(&mut m, k, through_gate, direct)?;
    }
    Ok(m)
}
