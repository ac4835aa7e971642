//! Test support: the values of a C enum as C sees them, read from the committed header
//! (`include/trunkline.h`), which the header test keeps identical to cbindgen's output for these
//! sources. Tests compare them with what the exports know, so a value added to an enum without its
//! text (or the other way round) fails.

/// The values of the enumerators named `<prefix><NAME> = <value>,` in the header.
pub(crate) fn enum_values(prefix: &str) -> Vec<u32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/trunkline.h");
    let header = std::fs::read_to_string(path).unwrap();
    let values: Vec<u32> = header
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix))
        .map(|l| {
            let value = l.split_once(" = ").expect("an explicit value").1;
            value.trim_end_matches(',').parse().expect("a number")
        })
        .collect();
    assert!(!values.is_empty(), "no {prefix}* enumerators in the header");
    values
}
