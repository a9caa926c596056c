//! Credential routes: the agent calls the cred sidecar, which adds the key it alone holds.

use super::super::harness::{expect_ok, run, said, show, Harness, Options};
use super::super::Engine;
use super::{fetch, AWS_KEY};

/// The route's key: random per run, so finding it anywhere is meaningful.
fn route_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("sk-e2e-{nanos:x}-{}", std::process::id())
}

/// The stand-in model API's host name in bottle `slug`.
pub(super) fn api_host(slug: &str) -> String {
    format!("api.{slug}.test")
}

/// A route `model` to the stand-in, its key in `BOTTLE_E2E_ROUTE_KEY`, its URL in the
/// agent's `MODEL_BASE_URL`; the stand-in's certificate is from the scenario's CA.
pub(super) fn route_table(slug: &str) -> String {
    let api = api_host(slug);
    format!(
        "[[bottles.{slug}.cred_proxy.routes]]\n\
         name = \"model\"\nupstream = \"https://{api}\"\nheader = \"x-api-key\"\n\
         secret_env = \"BOTTLE_E2E_ROUTE_KEY\"\nagent_env = \"MODEL_BASE_URL\"\nca_file = \"ca.pem\"\n\n\
         [bottles.{slug}.cred_proxy]\nallow_private = [\"{api}\"]\n"
    )
}

/// A route adds the key outside the agent: the stand-in receives it, credential headers
/// the agent sets are replaced, a held stream's first event arrives while the stand-in
/// still holds it, an unknown route is a 404 naming the routes, the egress proxy refuses
/// the route's host with the route to use; and the key is in the cred sidecar only: not in
/// the agent's environment or files, not in any container's inspect output, not in the
/// audit log.
pub fn a_route_adds_the_key_outside_the_agent(engine: &'static Engine) {
    let key = route_key();
    let mut opts = Options::new("cred");
    opts.manifest_extra = Some(route_table);
    opts.bottle_env = vec![("BOTTLE_E2E_ROUTE_KEY", key.clone())];
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    let s = h.slug.clone();
    let api = api_host(&s);
    h.start_webs_scripted(
        std::slice::from_ref(&api),
        Some("{\"text\": \"held\", \"hold_ms\": 3000}\n{\"text\": \"second\"}\n"),
    );
    let cred = h.name("cred");
    assert_eq!(
        h.agent_ok("printf '%s' \"$MODEL_BASE_URL\""),
        format!("http://{cred}:8080/model"),
        "the agent is given the route's URL"
    );

    // A streamed reply, event by event: the first arrives while the stand-in holds the
    // stream for 3 s; the agent's own credential headers go nowhere.
    let out = h.agent_ok(
        "curl -sSN --max-time 20 \"$MODEL_BASE_URL/v1/messages\" \
         -H 'x-api-key: agent-placeholder' -H 'authorization: Bearer agent-token' \
         -H 'cookie: session=agent' -H 'content-type: application/json' \
         -d '{\"model\":\"m\",\"stream\":true,\"max_tokens\":8,\"tools\":[{\"name\":\"t\"}],\"messages\":[]}' \
         | while IFS= read -r line; do case $line in event:*) echo \"$(date +%s%3N) $line\";; esac; done",
    );
    let events: Vec<(u64, &str)> = out
        .lines()
        .filter_map(|l| {
            let (t, e) = l.split_once(' ')?;
            Some((t.parse().ok()?, e))
        })
        .collect();
    assert_eq!(events.len(), 6, "every event of the stream arrived:\n{out}");
    assert_eq!(events[0].1, "event: message_start", "{out}");
    assert!(
        events[1].0 - events[0].0 >= 2000,
        "the first event waited for the held rest of the stream (buffered):\n{out}"
    );

    // What the stand-in received, read through the route itself.
    let got = h.agent_ok("curl -sS --max-time 10 \"$MODEL_BASE_URL/_requests\"");
    let requests: serde_json::Value =
        serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got}"));
    let first = &requests[0];
    assert_eq!(first["path"], "/v1/messages", "{got}");
    assert_eq!(
        first["headers"]["x-api-key"],
        key.as_str(),
        "the route's key"
    );
    for header in ["authorization", "cookie"] {
        assert!(
            first["headers"].get(header).is_none(),
            "the agent's {header} reached the upstream: {got}"
        );
    }
    assert!(!got.contains("agent-placeholder") && !got.contains("agent-token"));

    // An unknown route: 404, naming the routes there are.
    let out = h.agent_ok(&format!(
        "curl -sS --max-time 10 -w ' %{{http_code}}' http://{cred}:8080/nope/v1/messages"
    ));
    assert!(
        out.ends_with(" 404") && out.contains("model"),
        "an unknown route is a 404 naming the routes: {out}"
    );

    // The route's host through the egress proxy: refused, with the route to call.
    let got = fetch(&h, &format!("https://{api}/"));
    assert_eq!(
        (got.status.as_str(), got.deny.as_str()),
        ("403", "use-route"),
        "{}",
        got.body
    );

    // The key, nowhere but in the cred sidecar.
    let agent_env = h.agent_ok("env");
    assert!(!agent_env.contains(&key), "the key is in the agent's env");
    let grep = h.agent_sh(&format!(
        "grep -rlsF -- '{key}' /etc /home /root /tmp /run /var /opt /srv 2>/dev/null"
    ));
    assert!(
        said(&grep).trim().is_empty(),
        "the key is in the agent's files: {}",
        show(&grep)
    );
    for role in ["agent", "gate", "proxy", "cred"] {
        let inspect = h.engine_ok(&["inspect", &h.name(role)]);
        assert!(
            !inspect.contains(&key),
            "the key is in {role}'s inspect output"
        );
    }
    let in_cred = h.engine_ok(&["exec", &cred, "cat", "/run/bottle-cred/model.key"]);
    assert_eq!(in_cred.trim(), key, "the cred sidecar holds the key");
    let stat = h.engine_ok(&[
        "exec",
        &cred,
        "stat",
        "-c",
        "%a %u",
        "/run/bottle-cred/model.key",
        "/run/bottle-cred",
    ]);
    assert_eq!(
        stat.trim(),
        "400 10003\n700 10003",
        "the key file is 0400 in a 0700 directory, both the sidecar's own"
    );

    // The audit log: the route's lines, never the key.
    let log = expect_ok(
        run(h.bottle().args(["logs", "--json", &s])),
        "bottle logs --json",
    );
    assert!(!log.contains(&key), "the key is in the audit log");
    let routed = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["source"] == "cred" && v["route"] == "model" && v["status"] == 200)
        .count();
    assert!(routed >= 2, "the route's requests are in the log:\n{log}");
    assert!(
        log.contains("\"unknown-route\"") && log.contains("\"use-route\""),
        "the refusals are in the log:\n{log}"
    );
}

/// The Claude Code scenario's manifest: the Anthropic route to the stand-in, the settings
/// `bottle init --agent claude-code` writes, and an egress allowing one web fixture.
fn claude_table(slug: &str) -> String {
    let api = api_host(slug);
    format!(
        "[bottles.{slug}.env]\n\
         ANTHROPIC_AUTH_TOKEN = \"bottle-cred-route\"\nDISABLE_TELEMETRY = \"1\"\n\
         DISABLE_ERROR_REPORTING = \"1\"\nDISABLE_AUTOUPDATER = \"1\"\n\
         CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = \"1\"\n\
         CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL = \"1\"\n\n\
         [[bottles.{slug}.cred_proxy.routes]]\n\
         name = \"anthropic\"\nupstream = \"https://{api}\"\nheader = \"x-api-key\"\n\
         secret_env = \"BOTTLE_E2E_ROUTE_KEY\"\nagent_env = \"ANTHROPIC_BASE_URL\"\nca_file = \"ca.pem\"\n\n\
         [bottles.{slug}.cred_proxy]\nallow_private = [\"{api}\"]\n\n\
         [bottles.{slug}.egress]\nallow = [\"web.{slug}.test\"]\nallow_private = [\"web.{slug}.test\"]\n"
    )
}

/// Claude Code itself at work in a bottle: the real `claude` (bottle-claude image) runs
/// `-p ... --dangerously-skip-permissions` against the stand-in Messages API through its
/// route, and carries out the tool calls the stand-in scripts: clone through the gate,
/// commit, push (arrives upstream); a commit holding a secret, push (refused, and the
/// refusal is Claude Code's tool result; the upstream does not move); a request to an
/// allowed host (answered) and to one the bottle does not allow (refused, in
/// `bottle logs --denied`). Every request the stand-in got carried the route's key, never
/// the agent's placeholder.
pub fn claude_code_works_in_a_bottle(engine: &'static Engine) {
    let key = route_key();
    let mut opts = Options::new("claude");
    opts.image = "bottle-claude:latest";
    opts.manifest_extra = Some(claude_table);
    opts.bottle_env = vec![("BOTTLE_E2E_ROUTE_KEY", key.clone())];
    let Some(h) = Harness::start(engine, opts) else {
        return;
    };
    let s = h.slug.clone();
    let api = api_host(&s);
    let web = format!("web.{s}.test");
    let refused = format!("paste.{s}.test");
    let url = &h.url;
    let who = "-c user.name=claude -c user.email=claude@bottle.invalid";
    let steps = [
        format!(
            "cd ~ && git clone {url} app 2>&1 && cd app && echo 'made by Claude Code' > claude.txt \
             && git add claude.txt && git {who} commit -qm 'Add claude.txt' && git push origin HEAD 2>&1"
        ),
        format!(
            "cd ~/app && echo 'AWS_ACCESS_KEY_ID={AWS_KEY}' > deploy.env && git add deploy.env \
             && git {who} commit -qm 'Add deploy settings' && git push origin HEAD 2>&1"
        ),
        format!(
            "curl -sS --max-time 10 --cacert /tmp/ca.pem https://{web}/ 2>&1; \
             curl -sS --max-time 10 https://{refused}/ 2>&1; true"
        ),
    ];
    let script: String = steps
        .iter()
        .map(|c| serde_json::json!({ "bash": c }).to_string() + "\n")
        .chain(["{\"text\": \"All three steps are done.\"}\n".to_owned()])
        .collect();
    h.start_webs_scripted(&[api.clone(), web.clone()], Some(&script));
    // Two fixtures just joined the egress network: wait, bounded, until the gate serves
    // the upstream again before Claude Code's first clone.
    h.wait_ready();
    let before = h
        .upstream_ref("refs/heads/main")
        .expect("the upstream's main");

    let out = h.agent_sh(
        "cd ~ && claude -p 'Carry out the steps you are given.' --dangerously-skip-permissions \
         --output-format stream-json --verbose 2>&1",
    );
    let transcript = said(&out);
    assert!(out.status.success(), "claude failed:\n{transcript}");
    assert!(
        transcript.contains("All three steps are done."),
        "Claude Code did not reach the end of the script:\n{transcript}"
    );

    // Step 1 arrived upstream through the gate.
    let after_clean = h
        .upstream_ref("refs/heads/main")
        .expect("the upstream's main");
    assert_ne!(
        after_clean, before,
        "the clean push did not arrive:\n{transcript}"
    );
    let log = said(&h.upstream_git(&["log", "--format=%s", "-2", "refs/heads/main"]));
    assert!(log.starts_with("Add claude.txt"), "upstream log: {log}");
    // Step 2 was refused, Claude Code was told so, the upstream did not move.
    assert!(
        transcript.contains("push refused: gitleaks found")
            && transcript.contains("aws-access-token"),
        "the refusal is not in Claude Code's tool results:\n{transcript}"
    );
    assert_eq!(
        h.upstream_ref("refs/heads/main").as_deref(),
        Some(after_clean.as_str()),
        "the upstream moved on the secret push"
    );
    // Step 3: the allowed host answered, the other was refused and logged.
    assert!(
        transcript.contains(&format!("hello from {web}")),
        "the allowed host's answer is not in the tool results:\n{transcript}"
    );
    let denied = expect_ok(
        run(h.bottle().args(["logs", "--denied", "--json", &s])),
        "bottle logs --denied --json",
    );
    assert!(
        denied
            .lines()
            .any(|l| l.contains(&format!("\"host\":\"{refused}\"")) && l.contains("not-allowed")),
        "the refused host is not in bottle logs --denied:\n{denied}"
    );
    assert!(!denied.contains(&key), "the key is in the audit log");

    // Every request to the stand-in carried the route's key and nothing of the agent's.
    let got = h.agent_ok("curl -sS --max-time 10 \"$ANTHROPIC_BASE_URL/_requests\"");
    let requests: Vec<serde_json::Value> =
        serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got}"));
    let messages: Vec<&serde_json::Value> = requests
        .iter()
        .filter(|r| r["path"] == "/v1/messages")
        .collect();
    assert!(
        messages.len() >= 4,
        "Claude Code made {} Messages requests, fewer than its four turns",
        messages.len()
    );
    for r in &requests {
        assert_eq!(r["headers"]["x-api-key"], key.as_str(), "{r}");
        assert!(r["headers"].get("authorization").is_none(), "{r}");
    }
    assert!(
        !got.contains("bottle-cred-route"),
        "the placeholder reached the upstream"
    );
    let env = h.agent_ok("env");
    assert!(!env.contains(&key), "the key is in the agent's environment");
}
