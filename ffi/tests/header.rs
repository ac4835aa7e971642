//! `include/trunkline.h` must be exactly what the pinned cbindgen generates from these sources.
//! To regenerate after changing the ABI: `TRUNKLINE_BLESS=1 cargo test -p trunkline-ffi --test header`.

use std::path::Path;

#[test]
fn committed_header_matches_cbindgen_output() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("../include/trunkline.h");
    if std::env::var_os("TRUNKLINE_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/trunkline.h is stale: regenerate it with TRUNKLINE_BLESS=1 cargo test -p trunkline-ffi --test header"
    );
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/trunkline.h"))
            .unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(header.contains(&format!("#define TRUNKLINE_VERSION \"{version}\"")), "TRUNKLINE_VERSION");
    for (name, value) in [
        ("MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(
            header.contains(&format!("#define TRUNKLINE_VERSION_{name} {value}")),
            "TRUNKLINE_VERSION_{name}"
        );
    }
}
