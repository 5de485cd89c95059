//! Bytes in, as `keelson render` and the controller read them: YAML documents through render's
//! reader, and JSON through the controller's `validate_value`, then build. Any panic, hang or
//! unbounded allocation is a finding.
#![no_main]

use keelson::{
    api::validate::validate_value,
    build::{self, ApiCapabilities, Credentials},
    render,
};
use libfuzzer_sys::fuzz_target;

fn creds(_: &str) -> Credentials {
    Credentials {
        password: "p".repeat(32),
        admin_password: "a".repeat(32),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The controller's path: the API server hands over JSON.
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let spec = value.get("spec").unwrap_or(&value);
        if let Ok(model) = validate_value("fuzz", "default", spec) {
            let owner = build::labels::owner_reference("fuzz", render::PLACEHOLDER_UID);
            let new_creds = model
                .databases
                .iter()
                .map(|d| (d.spec.name.clone(), creds(&d.spec.name)))
                .collect();
            let children = build::build(&model, &owner, ApiCapabilities::ALL, &new_creds);
            let _ = children.to_values();
        }
    }
    // render's path: YAML documents, validate, build, and the YAML it prints.
    for caps in [
        ApiCapabilities::ALL,
        ApiCapabilities {
            service_monitors: false,
            http_routes: false,
        },
    ] {
        if let Ok(objects) = render::render_values(text, caps, creds) {
            let _ = render::to_yaml_stream(&objects);
        }
    }
});
