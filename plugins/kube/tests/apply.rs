//! `BOTTLE_KUBE_APPLY`: the plugin prints unless asked to apply.

use bottle_kube::apply_setting;

#[test]
fn printing_is_the_default_and_applying_is_asked_for() {
    assert!(!apply_setting(None).unwrap());
    for no in ["0", "false", "no"] {
        assert!(!apply_setting(Some(no)).unwrap(), "{no}");
    }
    for yes in ["1", "true", "yes"] {
        assert!(apply_setting(Some(yes)).unwrap(), "{yes}");
    }
    let e = apply_setting(Some("maybe")).unwrap_err().to_string();
    assert!(
        e.contains("BOTTLE_KUBE_APPLY=maybe") && e.contains("use 1"),
        "{e}"
    );
}
