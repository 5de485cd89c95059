//! How long validate and build take for the shop sample (release build):
//! `cargo run --release -p keelson --example validate_build_speed`.

use std::time::Instant;

fn main() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/shop.yaml"))
            .expect("samples/shop.yaml");
    let app: keelson::api::Application =
        serde_norway::from_str(&text).expect("a valid Application");
    let runs = 1000;

    let t = Instant::now();
    let model = keelson::api::validate(&app).expect("valid");
    println!(
        "first validate (compiles the schema and CEL rules): {:?}",
        t.elapsed()
    );

    let t = Instant::now();
    for _ in 0..runs {
        let _ = keelson::api::validate(&app).expect("valid");
    }
    println!("validate: {:?} per Application", t.elapsed() / runs);

    let owner = Default::default();
    let t = Instant::now();
    for _ in 0..runs {
        let _ = keelson::build::build(
            &model,
            &owner,
            keelson::build::ApiCapabilities::ALL,
            &Default::default(),
        );
    }
    println!(
        "build: {:?} per Application (23 objects)",
        t.elapsed() / runs
    );
}
