//! Every place a push can carry a secret, each refused with the gate unmoved, and the same
//! shape without a secret accepted. Real git, real gitleaks, real pushes into a local bare
//! repository whose pre-receive hook runs the scanner.

mod common;

use common::{secret, secret_with_false, Fixture};
use std::io::Write;

fn key_line() -> String {
    format!("aws_access_key_id = {}\n", secret())
}

fn assert_rule(err: &str, rule: &str) {
    assert!(err.contains(rule), "no {rule} finding:\n{err}");
}

#[test]
fn a_plain_file_is_refused_and_a_clean_one_accepted() {
    let f = Fixture::new(&[]);
    f.write("config.env", key_line().as_bytes());
    let c = f.commit("add config");
    let err = f.push_refused(&["main"]);
    assert_rule(&err, "aws-access-token");
    assert!(err.contains("config.env"), "{err}");
    assert!(err.contains(&c[..12]), "the commit is not named:\n{err}");
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("accept_fingerprints"), "{err}");
    let report = f.report();
    assert_eq!(report["result"], "findings");
    assert_eq!(report["findings"][0]["place"]["path"], "config.env");
    assert_eq!(report["findings"][0]["place"]["via"]["commit"], c.as_str());

    f.git(&["reset", "-q", "--hard", "HEAD~1"]);
    f.write("config.env", b"aws_region = eu-west-1\n");
    f.commit("add config");
    let out = f.push_ok(&["main"]);
    assert!(out.contains("no secrets found"), "{out}");
    assert_eq!(f.report()["result"], "clean");
}

/// A merge whose conflict resolution alone holds the secret (`git log -p` shows no diff for
/// a merge).
fn merge(resolution: &str) -> Fixture {
    let f = Fixture::new(&[]);
    f.write("app.cfg", b"mode = base\n");
    f.commit("base");
    f.push_ok(&["main"]);
    f.git(&["checkout", "-q", "-b", "side"]);
    f.write("app.cfg", b"mode = side\n");
    f.commit("side");
    f.git(&["checkout", "-q", "main"]);
    f.write("app.cfg", b"mode = main\n");
    f.commit("main");
    let _ = common::git_in(&f.work)
        .args(["merge", "-q", "--no-commit", "side"])
        .output()
        .unwrap();
    f.write("app.cfg", resolution.as_bytes());
    f.commit("merge side");
    f
}

#[test]
fn a_merge_resolution_is_scanned() {
    let f = merge(&key_line());
    let err = f.push_refused(&["main"]);
    assert_rule(&err, "aws-access-token");
    assert!(err.contains("app.cfg"), "{err}");
    let merge_commit = f.git(&["rev-parse", "HEAD"]);
    assert!(err.contains(&merge_commit[..12]), "not the merge:\n{err}");

    let f = merge("mode = both\n");
    f.push_ok(&["main"]);
}

#[test]
fn a_commit_message_is_scanned() {
    let f = Fixture::new(&[]);
    f.commit(&format!("deploy\n\nthe key is {}\n", secret()));
    let err = f.push_refused(&["main"]);
    assert!(err.contains("the message of commit"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    let report = f.report();
    assert_eq!(report["findings"][0]["place"]["part"], "message");

    f.git(&[
        "commit",
        "-q",
        "--amend",
        "--allow-empty",
        "-m",
        "deploy\n\nthe key is in the vault\n",
    ]);
    f.push_ok(&["main"]);
}

#[test]
fn a_tag_message_is_scanned() {
    let f = Fixture::new(&[]);
    let msg = format!("release\n\nkey {}\n", secret());
    f.git(&["tag", "-a", "v1", "-m", &msg]);
    let err = f.push_refused(&["refs/tags/v1"]);
    assert!(err.contains("the message of tag \"v1\""), "{err}");

    f.git(&["tag", "-a", "-f", "v1", "-m", "release 1"]);
    f.push_ok(&["refs/tags/v1"]);
}

#[test]
fn a_ref_to_a_blob_is_scanned() {
    let f = Fixture::new(&[]);
    f.write("loose", key_line().as_bytes());
    let blob = f.git(&["hash-object", "-w", "loose"]);
    let err = f.push_refused(&[&format!("{blob}:refs/tags/blob")]);
    assert!(
        err.contains("pointed at directly by refs/tags/blob"),
        "{err}"
    );

    f.write("loose", b"nothing to see\n");
    let blob = f.git(&["hash-object", "-w", "loose"]);
    f.push_ok(&[&format!("{blob}:refs/tags/blob")]);
}

#[test]
fn a_ref_to_a_tree_is_scanned() {
    let f = Fixture::new(&[]);
    let tree_with = |content: &str| {
        f.write("loose", content.as_bytes());
        let blob = f.git(&["hash-object", "-w", "loose"]);
        let mut cmd = common::git_in(&f.work);
        cmd.args(["mktree"]).stdin(std::process::Stdio::piped());
        cmd.stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "100644 blob {blob}\tkeys.txt").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let tree = tree_with(&key_line());
    let err = f.push_refused(&[&format!("{tree}:refs/tags/tree")]);
    assert!(err.contains("\"keys.txt\""), "{err}");
    assert!(err.contains("refs/tags/tree"), "{err}");

    let tree = tree_with("clean\n");
    f.push_ok(&[&format!("{tree}:refs/tags/tree")]);
}

#[test]
fn notes_are_scanned() {
    let f = Fixture::new(&[]);
    f.git(&["notes", "add", "-m", &format!("deployed with {}", secret())]);
    let err = f.push_refused(&["refs/notes/commits"]);
    assert_rule(&err, "aws-access-token");

    // (A note's history stays in its ref: the clean twin starts afresh.)
    let f = Fixture::new(&[]);
    f.git(&["notes", "add", "-m", "deployed on Tuesday"]);
    f.push_ok(&["refs/notes/commits"]);
}

/// Bytes gitleaks' own `dir` mode would skip: starting like a PDF, an ELF, a PNG, a DOS
/// executable, a bzip2 stream; with NUL bytes around the secret.
#[test]
fn binary_content_is_scanned() {
    for (i, magic) in [
        &b"%PDF-1.4\n"[..],
        b"\x7fELF\x02\x01\x01\0\0\0",
        b"\x89PNG\r\n\x1a\n",
        b"MZ\x90\0",
        b"BZh91AY",
    ]
    .iter()
    .enumerate()
    {
        let f = Fixture::new(&[]);
        let mut bytes = magic.to_vec();
        bytes.extend(b"\0\0\x01\x02");
        bytes.extend(secret().as_bytes());
        bytes.extend(b"\0\xff\xfe\0");
        f.write(&format!("blob{i}.bin"), &bytes);
        f.commit("binary");
        let err = f.push_refused(&["main"]);
        assert_rule(&err, "aws-access-token");
    }

    let f = Fixture::new(&[]);
    let mut bytes = b"\x7fELF\x02\x01\x01\0".to_vec();
    bytes.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
    f.write("tool.bin", &bytes);
    f.commit("binary");
    f.push_ok(&["main"]);
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xff, 0xfe] } else { Vec::new() };
    out.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
    out
}

#[test]
fn utf16_is_scanned() {
    for bom in [true, false] {
        let f = Fixture::new(&[]);
        f.write(
            "keys.reg",
            &utf16le(&format!("[keys]\r\n{}", key_line()), bom),
        );
        f.commit("utf-16");
        let err = f.push_refused(&["main"]);
        assert!(err.contains("UTF-16"), "{err}");
    }
    let f = Fixture::new(&[]);
    f.write("keys.reg", &utf16le("[keys]\r\nnone = here\r\n", true));
    f.commit("utf-16");
    f.push_ok(&["main"]);
}

fn zip_of(name: &str, content: &[u8], method: zip::CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    w.start_file(name, opts).unwrap();
    w.write_all(content).unwrap();
    w.finish().unwrap().into_inner()
}

fn gzip_of(content: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(content).unwrap();
    e.finish().unwrap()
}

fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn a_zip_is_opened() {
    let f = Fixture::new(&[]);
    // Named so that nothing but its content says it is a zip.
    let z = zip_of(
        "conf/keys.txt",
        key_line().as_bytes(),
        zip::CompressionMethod::Deflated,
    );
    f.write("assets/data.bin", &z);
    f.commit("zip");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("assets/data.bin!conf/keys.txt"), "{err}");

    let f = Fixture::new(&[]);
    f.write(
        "assets/data.zip",
        &zip_of("conf/keys.txt", b"none\n", zip::CompressionMethod::Deflated),
    );
    f.commit("zip");
    f.push_ok(&["main"]);
}

#[test]
fn gzip_and_tar_gz_are_opened() {
    let f = Fixture::new(&[]);
    f.write("logs/run.log.gz", &gzip_of(key_line().as_bytes()));
    f.commit("gzip");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("logs/run.log.gz!(gunzipped)"), "{err}");

    let f = Fixture::new(&[]);
    f.write(
        "dist/app.tgz",
        &gzip_of(&tar_of("app/.env", key_line().as_bytes())),
    );
    f.commit("tar.gz");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("dist/app.tgz!(gunzipped)!app/.env"), "{err}");

    let f = Fixture::new(&[]);
    f.write(
        "dist/app.tgz",
        &gzip_of(&tar_of("app/.env", b"PORT=8080\n")),
    );
    f.write("logs/run.log.gz", &gzip_of(b"started\n"));
    f.commit("archives");
    f.push_ok(&["main"]);
}

/// Paths gitleaks' default global allowlist skips.
#[test]
fn allowlisted_paths_are_scanned() {
    for path in [
        "node_modules/pkg/index.js",
        "package-lock.json",
        "yarn.lock",
        "vendor/github.com/x/y/z.go",
        "logo.svg",
        "doc/manual.pdf",
        "my-gitleaks.toml",
        ".gitleaks.toml",
    ] {
        let f = Fixture::new(&[]);
        f.write(path, key_line().as_bytes());
        f.commit("allowlisted path");
        let err = f.push_refused(&["main"]);
        assert!(err.contains(path), "{path}: {err}");
    }
    let f = Fixture::new(&[]);
    f.write("node_modules/pkg/index.js", b"module.exports = 1;\n");
    f.write("package-lock.json", b"{}\n");
    f.commit("clean deps");
    f.push_ok(&["main"]);
}

#[test]
fn a_renamed_file_is_scanned() {
    let f = Fixture::new(&[]);
    f.write("a.txt", key_line().as_bytes());
    f.commit("add");
    f.git(&["mv", "a.txt", "b.txt"]);
    f.commit("rename");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("a.txt"), "{err}");
    assert!(err.contains("also at 1 more path"), "{err}");

    let f = Fixture::new(&[]);
    f.write("a.txt", b"clean\n");
    f.commit("add");
    f.git(&["mv", "a.txt", "b.txt"]);
    f.commit("rename");
    f.push_ok(&["main"]);
}

/// A private key whose BEGIN and END lines were pushed before (clean, too short to match),
/// and whose body comes in a later commit: `-U0` hunks show the body alone.
#[test]
fn a_secret_split_across_hunks_is_scanned() {
    let body: String = (0..4)
        .map(|i| format!("MIIEpAIBAAKCAQEA{i}q3Rk9vXb2Lm8Wn5Tz7Yc1Hd4Fg6Jp0Ks\n"))
        .collect();
    for (end, refused) in [("-----END RSA PRIVATE KEY-----\n", true), ("\n", false)] {
        let f = Fixture::new(&[]);
        f.write(
            "id_rsa",
            format!("-----BEGIN RSA PRIVATE KEY-----\nx\n{end}").as_bytes(),
        );
        f.commit("placeholder");
        f.push_ok(&["main"]);
        f.write(
            "id_rsa",
            format!("-----BEGIN RSA PRIVATE KEY-----\n{body}{end}").as_bytes(),
        );
        f.commit("the key");
        if refused {
            let err = f.push_refused(&["main"]);
            assert_rule(&err, "private-key");
        } else {
            f.push_ok(&["main"]);
        }
    }
}

#[test]
fn a_finding_containing_false_is_refused() {
    let f = Fixture::new(&[]);
    f.write(
        "keys.txt",
        format!("id = {}\n", secret_with_false()).as_bytes(),
    );
    f.commit("false");
    let err = f.push_refused(&["main"]);
    assert_rule(&err, "aws-access-token");

    // The stopwords the regex meant stay: a value that is just "false" is no finding.
    let f = Fixture::new(&[]);
    f.write("keys.txt", b"password = \"false\"\nsecret_key = \"null\"\n");
    f.commit("false");
    f.push_ok(&["main"]);
}

#[test]
fn gitleaks_allow_comments_are_ignored() {
    let f = Fixture::new(&[]);
    f.write(
        "a.py",
        format!("KEY = \"{}\"  # gitleaks:allow\n", secret()).as_bytes(),
    );
    f.commit("allow");
    f.push_refused(&["main"]);
}

#[test]
fn a_secret_in_a_file_name_or_ref_name_is_refused() {
    let f = Fixture::new(&[]);
    f.write(&format!("{}.txt", secret()), b"x\n");
    f.commit("name");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("the name of its entry 1"), "{err}");

    // git itself names the refused ref; the scanner's own lines do not.
    let f = Fixture::new(&[]);
    let before = f.gate_refs();
    let (ok, err) = f.push(&[&format!("HEAD:refs/heads/{}", secret())]);
    assert!(!ok && before == f.gate_refs(), "{err}");
    assert!(err.contains("the name of a ref"), "{err}");
    for line in err.lines().filter(|l| l.contains("bottle-gate:")) {
        assert!(!line.contains(&secret()), "{line}");
    }
}

#[test]
fn replace_refs_do_not_change_what_is_scanned() {
    let f = Fixture::new(&[]);
    // The gate first gets refs/replace/<secret blob> -> a clean blob...
    f.write("clean", b"clean\n");
    let clean = f.git(&["hash-object", "-w", "clean"]);
    f.write("keys.txt", key_line().as_bytes());
    let bad = f.git(&["hash-object", "-w", "keys.txt"]);
    f.push_ok(&[&format!("{clean}:refs/replace/{bad}")]);
    // ...then the secret blob itself: git must show it as it is.
    f.commit("keys");
    f.push_refused(&["main"]);
}

#[test]
fn attributes_do_not_change_what_is_scanned() {
    let f = Fixture::new(&[]);
    // On the gate's HEAD first (a bare repository reads HEAD:.gitattributes), then in the
    // pushed tree itself.
    f.write(".gitattributes", b"* binary -diff -text filter=hide\n");
    f.commit("attributes");
    f.push_ok(&["main"]);
    f.write("keys.txt", key_line().as_bytes());
    f.commit("keys");
    f.push_refused(&["main"]);
}

#[test]
fn gitleaks_environment_is_ignored() {
    let f = Fixture::new(&[]);
    let lax = f.tmp.path().join("lax.toml");
    std::fs::write(&lax, "[[rules]]\nid = \"nothing\"\nregex = '''^$never'''\n").unwrap();
    f.write("keys.txt", key_line().as_bytes());
    f.commit("keys");
    let toml = std::fs::read_to_string(&lax).unwrap();
    f.push_refused_env(
        &["main"],
        &[
            ("GITLEAKS_CONFIG", lax.to_str().unwrap()),
            ("GITLEAKS_CONFIG_TOML", &toml),
        ],
    );
}

#[test]
fn accepted_findings_go_through() {
    let f = Fixture::new(&[]);
    f.write("fixtures/fake.env", key_line().as_bytes());
    f.commit("fixture");
    f.push_refused(&["main"]);
    let fp = f.report()["findings"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();

    f.set_hook(&["--accept-fingerprint", &fp]);
    let out = f.push_ok(&["main"]);
    assert!(out.contains("1 finding accepted"), "{out}");

    // By path: only when every path of the blob matches.
    let f = Fixture::new(&["--accept-path", "^fixtures/"]);
    f.write("fixtures/fake.env", key_line().as_bytes());
    f.write("src/real.env", key_line().as_bytes());
    f.commit("fixture and a copy");
    f.push_refused(&["main"]);
    f.git(&["rm", "-q", "src/real.env"]);
    f.git(&["commit", "-q", "--amend", "-m", "fixture"]);
    f.push_ok(&["main"]);
}

#[test]
fn over_the_push_limit_is_refused() {
    let f = Fixture::new(&["--max-push-bytes", "10000"]);
    f.write("big.txt", &vec![b'a'; 20_000]);
    f.commit("big");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("max_push_mb"), "{err}");
    assert_eq!(f.report()["limit"]["limit"], "push_bytes");
}

#[test]
fn a_decompression_bomb_is_refused() {
    let f = Fixture::new(&["--max-scan-bytes", "1000000"]);
    f.write("zeros.gz", &gzip_of(&vec![0u8; 20_000_000]));
    f.commit("bomb");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("max_scan_mb"), "{err}");
}

#[test]
fn over_the_time_limit_is_refused() {
    let f = Fixture::new(&[]);
    f.set_hook(&["--timeout-secs", "0"]);
    f.write("a.txt", b"clean\n");
    f.commit("slow");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("scan_timeout_s"), "{err}");
}

#[test]
fn archives_nested_too_deep_are_refused() {
    let f = Fixture::new(&["--max-archive-depth", "1"]);
    f.write(
        "dist/app.tgz",
        &gzip_of(&tar_of("app/.env", b"PORT=8080\n")),
    );
    f.commit("tar.gz");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("nests archives"), "{err}");
}

#[test]
fn a_missing_gitleaks_refuses() {
    let f = Fixture::new(&[]);
    f.set_hook(&["--gitleaks", "/nonexistent/gitleaks"]);
    f.write("a.txt", b"clean\n");
    f.commit("any");
    let err = f.push_refused(&["main"]);
    assert!(err.contains("scan failed"), "{err}");
}

#[test]
fn deletions_and_existing_objects_pass() {
    let f = Fixture::new(&[]);
    f.git(&["branch", "other"]);
    f.push_ok(&["other"]);
    f.push_ok(&[":refs/heads/other"]);
}

/// gitleaks reads a file in chunks of about 100 kB, cut anywhere when no blank line is near:
/// a secret across such a cut must still be found.
#[test]
fn a_secret_in_a_large_file_is_found_wherever_it_is() {
    for at in [89_990usize, 99_990, 124_990, 250_000] {
        let f = Fixture::new(&[]);
        let mut bytes: Vec<u8> = (0..at)
            .map(|i| {
                if i % 81 == 80 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        bytes.extend(format!(" {} ", secret()).as_bytes());
        bytes.extend((0..150_000).map(|i| if i % 81 == 80 { b'\n' } else { b'q' }));
        f.write("bundle.min.js", &bytes);
        f.commit("large");
        let err = f.push_refused(&["main"]);
        let line = at / 81 + 1;
        assert!(err.contains(&format!("line {line}")), "at {at}: {err}");
    }
}

/// A rule keyed on a path (here `pkcs12-file`: any `.p12` file) sees every name a blob has
/// in the push: one name kept through several commits, or a name it only gets later.
#[test]
fn a_path_keyed_rule_sees_every_name_of_a_blob() {
    // The same name in every tree (and commits that change another file meanwhile).
    let f = Fixture::new(&[]);
    f.write("certs/client.p12", b"not really a certificate\n");
    f.commit("add a certificate");
    for i in 0..3 {
        f.write("certs/notes.txt", format!("note {i}\n").as_bytes());
        f.commit("notes");
    }
    let err = f.push_refused(&["main"]);
    assert_rule(&err, "pkcs12-file");
    assert!(err.contains("certs/client.p12"), "{err}");

    // First under a name no rule keys on, then also under a `.p12` name.
    let f = Fixture::new(&[]);
    f.write("a.txt", b"not really a certificate\n");
    f.commit("add");
    f.write("b/client.p12", b"not really a certificate\n");
    f.commit("copy");
    let err = f.push_refused(&["main"]);
    assert_rule(&err, "pkcs12-file");

    // The same blob under names no rule keys on goes through.
    let f = Fixture::new(&[]);
    f.write("a.txt", b"not really a certificate\n");
    f.commit("add");
    f.write("b/c.txt", b"not really a certificate\n");
    f.commit("copy");
    f.push_ok(&["main"]);
}
