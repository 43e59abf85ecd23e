//! checkov scans template.yaml in `make test`; a finding may only be skipped in the
//! resource's own `Metadata` with a written reason, so the reasons are reviewed with the
//! resource they excuse. This keeps them honest.

use emulator::template::Template;
use serde_json::Value;

#[test]
fn every_skipped_check_names_the_check_and_says_why() {
    let template = Template::load(&Template::workspace_template()).expect("template loads");
    let mut skipped = 0;
    for (name, resource) in &template.resources {
        let skips = resource
            .metadata
            .get("checkov")
            .map_or(&Value::Null, |checkov| &checkov["skip"]);
        for skip in skips.as_array().into_iter().flatten() {
            let id = skip["id"].as_str().unwrap_or_default();
            assert!(id.starts_with("CKV_"), "{name}: {skip}");
            let reason = skip["comment"].as_str().unwrap_or_default();
            assert!(
                reason.split_whitespace().count() >= 8,
                "{name} skips {id} without a real reason: {reason:?}"
            );
            skipped += 1;
        }
        assert!(
            matches!(skips, Value::Null | Value::Array(_)),
            "{name}: checkov skips are a list"
        );
    }
    assert!(skipped > 0, "the template's skips are read");
}
