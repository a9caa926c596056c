//! Manifest validation: each failure names the file, line, field and what to do.

mod common;

use std::path::Path;

use bottle_core::manifest::{self, Env};
use bottle_core::planner::{self, PlanError};
use common::HOST_KEY;

fn errors(text: &str) -> String {
    let env = Env {
        home: Some("/home/u".into()),
    };
    match manifest::parse(Path::new("bottle.toml"), text, &env) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn git_entry(name: &str, upstream: &str, extra: &str) -> String {
    format!(
        "[[bottles.demo.git]]\nname = {name:?}\nupstream = {upstream:?}\nidentity_file = \"/k\"\nknown_host_key = \"{HOST_KEY}\"\n{extra}\n"
    )
}

const HEAD: &str = "[bottles.demo]\nimage = \"img\"\n";

#[test]
fn the_example_is_valid() {
    let fx = common::Fixture::new();
    let m = fx.parse(&common::example()).unwrap();
    let b = m.select(None).unwrap();
    assert_eq!(b.git.len(), 2);
    assert_eq!(b.git[0].host, "git.example.com");
    assert_eq!(b.git[0].port, Some(2222));
    assert_eq!(b.git[1].host, "git.example.com");
    assert_eq!(b.git[1].port, None);
    assert_eq!(b.git[1].known_host_key.as_deref(), Some(HOST_KEY));
    assert_eq!(b.git[1].identity_file.value, fx.path().join("id_app"));
    assert_eq!(
        b.git[0].known_hosts_line().unwrap(),
        format!("[git.example.com]:2222 {HOST_KEY}\n")
    );
    assert_eq!(m.settings.backend.as_ref().unwrap().value, "dry-run");
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let e = errors(&format!("{HEAD}imgae = \"x\"\n"));
    assert!(
        e.starts_with("bottle.toml:3:1: bottles.demo.imgae: "),
        "{e}"
    );
    assert!(e.contains("unknown key `imgae`"), "{e}");
    assert!(
        e.contains("hint: remove it or fix its spelling; the keys here are: image, command"),
        "{e}"
    );
    let e = errors(&format!(
        "{HEAD}{}",
        git_entry("app", "git@h:x.git", "token = \"t\"")
    ));
    assert!(
        e.contains("bottle.toml:8:1: bottles.demo.git[0].token")
            && e.contains("unknown key `token`"),
        "{e}"
    );
}

/// Every unknown key of the file is reported in one run, each with its full path.
#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = format!(
        "[settings]\nbakend = \"docker\"\n\n{HEAD}memroy = \"1g\"\n{}\
         [bottles.demo.egress]\nalow = []\n\
         [[bottles.demo.cred_proxy.routes]]\nname = \"a\"\nupstream = \"https://a.example\"\nheader = \"x\"\nsecret = \"s\"\n\
         [bottles.other]\nimage = \"i\"\ncomand = [\"x\"]\n",
        git_entry("app", "git@h:x.git", "identity = \"k\"")
    );
    let e = errors(&text);
    for field in [
        "settings.bakend",
        "bottles.demo.memroy",
        "bottles.demo.git[0].identity",
        "bottles.demo.egress.alow",
        "bottles.demo.cred_proxy.routes[0].secret",
        "bottles.other.comand",
    ] {
        assert!(
            e.contains(&format!("{field}: unknown key")),
            "{field} missing in:\n{e}"
        );
    }
    assert!(e.contains("6 problems"), "{e}");
}

/// Wrong types and missing keys are reported with the unknown keys, all in one run, each
/// with its full path and plain words (no `expected i64`).
#[test]
fn every_type_error_and_missing_key_is_reported_at_once() {
    let text = format!(
        "[settings]\nbackend = 3\n\n[bottles.demo]\nimage = [\"img\"]\npids_limit = \"ten\"\n\
         env = {{ A = 1, B = \"ok\" }}\ncap_add = \"NET_ADMIN\"\nmemroy = \"1g\"\n{}{}\
         [bottles.demo.egress]\nallow = [\"a.example\", 443]\n\
         [[bottles.demo.cred_proxy.routes]]\nname = \"a\"\nheader = true\n\
         [bottles.other]\ncommand = \"sleep infinity\"\n",
        git_entry("app", "git@h:x.git", ""),
        git_entry(
            "lib",
            "git@h:y.git",
            "max_push_mb = \"ten\"\nmax_scan_mb = 1.5\nextra_hosts = [\"h\"]"
        ),
    );
    let e = errors(&text);
    assert!(!e.contains("expected"), "{e}");
    insta::assert_snapshot!(e);
}

#[test]
fn duplicate_git_names_are_refused() {
    let e = errors(&format!(
        "{HEAD}{}{}",
        git_entry("app", "git@h:a.git", ""),
        git_entry("app", "git@h:b.git", "")
    ));
    assert!(e.starts_with("bottle.toml:10:8: bottles.demo.git[1].name: the git name 'app' is used twice (first at line 4)"), "{e}");
}

#[test]
fn unsafe_names_are_refused() {
    for bad in [
        "a'b", "$(id)", "a b", "a\nb", "-x", "../x", "x.git", "`id`", "",
    ] {
        let e = errors(&format!("{HEAD}{}", git_entry(bad, "git@h:a.git", "")));
        assert!(
            e.contains("bottles.demo.git[0].name") && e.contains("is not a valid git entry name"),
            "{bad:?}: {e}"
        );
    }
    for bad in ["Demo", "a_b", "-a", "a.b", "$(id)"] {
        let e = errors(&format!("[bottles.{bad:?}]\nimage = \"img\"\n"));
        assert!(e.contains("is not a valid bottle name"), "{bad:?}: {e}");
    }
}

#[test]
fn bad_upstreams_are_refused() {
    for (bad, why) in [
        ("not a url", "whitespace"),
        ("https://github.com/a/b.git", "ssh only"),
        ("file:///srv/x.git", "ssh only"),
        ("/srv/x.git", "ssh only"),
        ("ssh://git@h:99999/x.git", "does not parse"),
        ("ssh://-oProxyCommand=x/y.git", "ssh option"),
        ("ssh://git@h/x.git\n", "control"),
        ("", "empty"),
    ] {
        let e = errors(&format!("{HEAD}{}", git_entry("app", bad, "")));
        assert!(
            e.contains("bottle.toml:5:12: bottles.demo.git[0].upstream"),
            "{bad:?}: {e}"
        );
        assert!(e.contains(why), "{bad:?} should say {why:?}: {e}");
        assert!(e.contains("hint: write ssh://"), "{e}");
    }
}

#[test]
fn bad_host_keys_are_refused() {
    for bad in [
        "ssh-ed25519",
        "AAAA",
        "ssh-ed25519 not-base64!",
        "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    ] {
        let text = format!("{HEAD}[[bottles.demo.git]]\nname = \"app\"\nupstream = \"git@h:a.git\"\nidentity_file = \"/k\"\nknown_host_key = {bad:?}\n");
        let e = errors(&text);
        assert!(
            e.contains(
                "bottle.toml:7:18: bottles.demo.git[0].known_host_key: not an SSH public host key"
            ),
            "{bad:?}: {e}"
        );
        assert!(e.contains("ssh-keyscan"), "{e}");
    }
}

/// A password in an upstream URL is refused, and not repeated in the message.
#[test]
fn a_password_in_an_upstream_url_is_refused_without_repeating_it() {
    for url in [
        "ssh://git:hunter2secret@git.example.com/a.git",
        "https://git:hunter2secret@git.example.com/a.git",
    ] {
        let e = errors(&format!("{HEAD}{}", git_entry("app", url, "")));
        assert!(
            e.contains("bottles.demo.git[0].upstream: the upstream URL holds a password"),
            "{e}"
        );
        assert!(e.contains("identity_file"), "{e}");
        assert!(
            !e.contains("hunter2secret"),
            "the password was printed: {e}"
        );
    }
}

/// The whole line `ssh-keyscan` prints is accepted when it names the upstream's own host
/// (and port, in OpenSSH's `[host]:port` form); another host's, or a hashed one, is not.
#[test]
fn an_ssh_keyscan_line_is_accepted_for_the_upstreams_host() {
    let parse = |upstream: &str, line: &str| {
        let text = format!("{HEAD}[[bottles.demo.git]]\nname = \"app\"\nupstream = {upstream:?}\nidentity_file = \"/k\"\nknown_host_key = {line:?}\n");
        manifest::parse(Path::new("bottle.toml"), &text, &Env { home: None })
    };
    for (upstream, line) in [
        (
            "ssh://git@git.example.com:2222/a.git",
            format!("[git.example.com]:2222 {HOST_KEY}"),
        ),
        (
            "ssh://git@Git.Example.com/a.git",
            format!("git.example.com {HOST_KEY}"),
        ),
        (
            "git@git.example.com:a.git",
            format!("other.example.com,git.example.com {HOST_KEY}"),
        ),
        (
            "git@gitserver:a.git",
            format!("gitserver {HOST_KEY} a comment"),
        ),
    ] {
        let m = parse(upstream, &line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            m.bottles["demo"].git[0].known_host_key.as_deref(),
            Some(HOST_KEY),
            "{line}"
        );
    }
    for (upstream, line, says) in [
        (
            "ssh://git@git.example.com:2222/a.git",
            format!("git.example.com {HOST_KEY}"),
            "not for the upstream's [git.example.com]:2222",
        ),
        (
            "git@git.example.com:a.git",
            format!("evil.example.com {HOST_KEY}"),
            "is for evil.example.com",
        ),
        (
            "git@git.example.com:a.git",
            format!("|1|abc=|def= {HOST_KEY}"),
            "hashed",
        ),
    ] {
        let e = parse(upstream, &line).unwrap_err().to_string();
        assert!(
            e.contains("bottles.demo.git[0].known_host_key") && e.contains(says),
            "{line}: {e}"
        );
        assert!(e.contains("ssh-keyscan -p"), "{e}");
    }
}

#[test]
fn extra_hosts_must_be_addresses_and_agree() {
    let e = errors(&format!(
        "{HEAD}{}",
        git_entry("app", "git@h:a.git", "extra_hosts = { h = \"not-an-ip\" }")
    ));
    assert!(
        e.contains("bottles.demo.git[0].extra_hosts.h: 'not-an-ip' is not an IP address"),
        "{e}"
    );
    let e = errors(&format!(
        "{HEAD}{}{}",
        git_entry(
            "app",
            "git@h:a.git",
            "extra_hosts = { \"git.corp\" = \"10.0.0.1\" }"
        ),
        git_entry(
            "lib",
            "git@h:b.git",
            "extra_hosts = { \"git.corp\" = \"10.0.0.2\" }"
        )
    ));
    assert!(e.contains("host 'git.corp' maps to 10.0.0.2 here, in upstream 'lib', but to 10.0.0.1 in upstream 'app'"), "{e}");
    // The same address twice is fine.
    let fx = common::Fixture::new();
    fx.parse(&format!(
        "{HEAD}{}{}",
        git_entry(
            "app",
            "git@h:a.git",
            "extra_hosts = { \"git.corp\" = \"10.0.0.1\" }"
        ),
        git_entry(
            "lib",
            "git@h:b.git",
            "extra_hosts = { \"git.corp\" = \"10.0.0.1\" }"
        )
    ))
    .unwrap();
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(&format!(
        "{HEAD}memory = \"lots\"\n{}",
        git_entry("a b", "https://x/y", "")
    ));
    assert!(e.ends_with("3 problems in the manifest"), "{e}");
}

#[test]
fn missing_identity_files_are_reported_at_plan_time() {
    let fx = common::Fixture::new();
    let text = format!("{HEAD}{}", git_entry("app", "git@h:a.git", ""))
        .replace("\"/k\"", "\"missing_key\"");
    let m = fx.parse(&text).unwrap();
    let err = planner::plan(
        m.select(None).unwrap(),
        &bottle_core::project::Project::new("proj").unwrap(),
    )
    .unwrap_err();
    let PlanError::Invalid(e) = err else {
        panic!("{err}")
    };
    let e = e.to_string();
    assert!(
        e.contains(
            "bottle.toml:6:17: bottles.demo.git[0].identity_file: cannot read identity file"
        ),
        "{e}"
    );
    assert!(e.contains("missing_key"), "{e}");
    assert!(e.contains("ssh-keygen"), "{e}");
}

#[test]
fn selecting_a_bottle() {
    let fx = common::Fixture::new();
    let two = fx
        .parse("[bottles.a]\nimage = \"i\"\n[bottles.b]\nimage = \"i\"\n")
        .unwrap();
    let e = two.select(None).unwrap_err().to_string();
    assert!(
        e.contains("none is named 'default'") && e.contains("a, b"),
        "{e}"
    );
    let e = two.select(Some("c")).unwrap_err().to_string();
    assert!(
        e.contains("no bottle named 'c'") && e.contains("a, b"),
        "{e}"
    );
    assert_eq!(two.select(Some("b")).unwrap().name, "b");
    let with_default = fx
        .parse("[bottles.a]\nimage = \"i\"\n[bottles.default]\nimage = \"i\"\n")
        .unwrap();
    assert_eq!(with_default.select(None).unwrap().name, "default");
    // A bottle without git entries is valid.
    assert!(two.select(Some("a")).unwrap().git.is_empty());
}

#[test]
fn memory_sizes() {
    assert_eq!(manifest::parse_memory("512m"), Some(512 << 20));
    assert_eq!(manifest::parse_memory("4G"), Some(4 << 30));
    assert_eq!(manifest::parse_memory("2gib"), Some(2 << 30));
    assert_eq!(manifest::parse_memory("1048576"), Some(1 << 20));
    assert_eq!(manifest::parse_memory("m"), None);
    assert_eq!(manifest::parse_memory("99999999999999999999g"), None);
    assert_eq!(manifest::parse_memory("-1m"), None);
}

#[test]
fn scan_settings_default_and_are_checked_with_their_line() {
    let fx = common::Fixture::new();
    let m = fx
        .parse(&format!("{HEAD}{}", git_entry("app", "git@h:a.git", "")))
        .unwrap();
    let scan = &m.select(None).unwrap().git[0].scan;
    assert_eq!(*scan, manifest::GitScan::default());
    assert_eq!(
        (
            scan.max_push_mb,
            scan.max_scan_mb,
            scan.scan_timeout_s,
            scan.max_archive_depth
        ),
        (256, 1024, 300, 4)
    );

    let set = "max_push_mb = 8\nmax_scan_mb = 64\nscan_timeout_s = 30\nmax_archive_depth = 0\n\
               accept_fingerprints = [\"0123abcd:generic-api-key:3\"]\n\
               accept_paths = ['^testdata/', '\\.example$']";
    let m = fx
        .parse(&format!("{HEAD}{}", git_entry("app", "git@h:a.git", set)))
        .unwrap();
    let scan = &m.select(None).unwrap().git[0].scan;
    assert_eq!(
        (
            scan.max_push_mb,
            scan.max_scan_mb,
            scan.scan_timeout_s,
            scan.max_archive_depth
        ),
        (8, 64, 30, 0)
    );
    assert_eq!(scan.accept_fingerprints, ["0123abcd:generic-api-key:3"]);
    assert_eq!(scan.accept_paths, ["^testdata/", "\\.example$"]);

    let bad = "max_push_mb = 0\nscan_timeout_s = -1\naccept_paths = ['ok', '(unclosed']\n\
               accept_fingerprints = [\"\"]";
    let e = errors(&format!("{HEAD}{}", git_entry("app", "git@h:a.git", bad)));
    assert!(
        e.contains("bottle.toml:8:15: bottles.demo.git[0].max_push_mb: 0 is not a push size in MiB between 1 and 1048576"),
        "{e}"
    );
    assert!(
        e.contains(
            "bottle.toml:9:18: bottles.demo.git[0].scan_timeout_s: -1 is not a number of seconds"
        ),
        "{e}"
    );
    assert!(
        e.contains("bottle.toml:10:23: bottles.demo.git[0].accept_paths[1]: '(unclosed' is not a path regex: it does not compile"),
        "{e}"
    );
    assert!(
        e.contains("bottles.demo.git[0].accept_fingerprints[0]: '' is not a finding's fingerprint"),
        "{e}"
    );
}

/// An identity file that is a public key, a private key behind a passphrase, or anything
/// else that is not a private key ssh reads, is refused when the bottle is planned, saying
/// what to do; an unprotected private key in any format ssh reads is taken.
#[test]
fn identity_files_must_be_unprotected_private_keys() {
    let fx = common::Fixture::new();
    let keygen = |file: &str, extra: &[&str]| {
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-C", "test", "-f"])
            .arg(fx.path().join(file))
            .args(extra)
            .output()
            .expect("ssh-keygen runs");
        assert!(out.status.success(), "{out:?}");
    };
    keygen("plain", &["-t", "ed25519", "-N", ""]);
    keygen("locked", &["-t", "ed25519", "-N", "a passphrase"]);
    keygen(
        "locked_pem",
        &["-t", "rsa", "-b", "1024", "-m", "PEM", "-N", "a passphrase"],
    );
    let plan = |key: &str| {
        let text = format!("{HEAD}{}", git_entry("app", "git@h:a.git", ""))
            .replace("\"/k\"", &format!("{key:?}"));
        let m = fx.parse(&text).unwrap();
        planner::plan(
            m.select(None).unwrap(),
            &bottle_core::project::Project::new("proj").unwrap(),
        )
        .map_err(|e| e.to_string())
    };
    keygen(
        "rsa_pem",
        &["-t", "rsa", "-b", "1024", "-m", "PEM", "-N", ""],
    );
    keygen("ecdsa_pkcs8", &["-t", "ecdsa", "-m", "PKCS8", "-N", ""]);
    keygen(
        "locked_pkcs8",
        &["-t", "ecdsa", "-m", "PKCS8", "-N", "a passphrase"],
    );
    for taken in ["plain", "rsa_pem", "ecdsa_pkcs8"] {
        plan(taken).unwrap_or_else(|e| panic!("{taken}: an unprotected key is taken: {e}"));
    }
    let plain = std::fs::read_to_string(fx.path().join("plain")).unwrap();
    let garbage = [
        ("notes", "just some notes\n".to_owned()),
        (
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
                .to_owned(),
        ),
        // OpenSSH's armour around a body that is not a key (a truncated copy).
        (
            "truncated",
            plain.lines().take(3).collect::<Vec<_>>().join("\n"),
        ),
        (
            "half_pem",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n".to_owned(),
        ),
    ];
    for (file, text) in &garbage {
        std::fs::write(fx.path().join(file), text).unwrap();
        let e = plan(file).unwrap_err();
        assert!(
            e.contains("identity_file")
                && e.contains(file)
                && e.contains("ssh-keygen -t ed25519 -N ''"),
            "{file}: {e}"
        );
    }
    let e = plan("plain.pub").unwrap_err();
    assert!(
        e.contains("identity_file") && e.contains("is a public key") && e.contains("without .pub"),
        "{e}"
    );
    for locked in ["locked", "locked_pem", "locked_pkcs8"] {
        let e = plan(locked).unwrap_err();
        assert!(
            e.contains("protected by a passphrase") && e.contains("ssh-keygen -p -N ''"),
            "{locked}: {e}"
        );
    }
}

/// A manifest setting every key there is: valid, so the unknown-key pass knows them all.
#[test]
fn a_manifest_with_every_key_is_valid() {
    let text = format!(
        "[settings]\nbackend = \"docker\"\npodman_socket = \"/run/podman/podman.sock\"\n\n\
         [bottles.demo]\nimage = \"img\"\ncommand = [\"sleep\", \"infinity\"]\nenv = {{ A = \"1\" }}\n\
         memory = \"1g\"\npids_limit = 100\ncap_add = [\"CHOWN\"]\ngate_memory = \"256m\"\n\n\
         [[bottles.demo.git]]\nname = \"app\"\nupstream = \"git@git.example.com:a.git\"\nidentity_file = \"/k\"\n\
         known_host_key = \"{HOST_KEY}\"\nextra_hosts = {{ \"git.example.com\" = \"192.0.2.1\" }}\n\
         max_push_mb = 10\nmax_scan_mb = 20\nscan_timeout_s = 30\nmax_archive_depth = 2\n\
         accept_fingerprints = [\"abc:rule:1\"]\naccept_paths = [\"^docs/\"]\n\n\
         [bottles.demo.egress]\nallow = [\"a.example.com\"]\ndeny = [\"b.example.com\"]\nallow_private = [\"c.example.com\"]\n\n\
         [bottles.demo.cred_proxy]\nallow_private = [\"api.example.com\"]\n\n\
         [[bottles.demo.cred_proxy.routes]]\nname = \"one\"\nupstream = \"https://api.example.com\"\nheader = \"x-api-key\"\n\
         format = \"{{secret}}\"\nsecret_env = \"ONE_KEY\"\nagent_env = \"ONE_URL\"\nca_file = \"/ca.pem\"\n\n\
         [[bottles.demo.cred_proxy.routes]]\nname = \"two\"\nupstream = \"https://api.example.com\"\nheader = \"x-api-key\"\n\
         secret_file = \"/key\"\n"
    );
    let env = Env { home: None };
    manifest::parse(Path::new("bottle.toml"), &text, &env).unwrap_or_else(|e| panic!("{e}"));
}
