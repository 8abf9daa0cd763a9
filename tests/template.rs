//! The `cargo generate` template cannot drift: `Cargo.toml.liquid` (what a
//! generated project gets as its `Cargo.toml`) must be `Cargo.toml` with only
//! the package name replaced by a placeholder. Add a dependency to one and
//! forget the other, and this test names the line.

use std::collections::BTreeSet;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The lines that may differ, as (section, plain line, templated line).
/// The library and the binary keep the name `websessions`: `src/main.rs` and
/// the tests refer to them by that name (README, "Start your own project").
const ALLOWED: &[(&str, &str, &str)] = &[(
    "[package]",
    r#"name = "websessions""#,
    r#"name = "{{project-name}}""#,
)];

/// `cargo generate` consumes `Cargo.toml.liquid`: a project generated from
/// the template has no twin left to compare, and says so.
fn template_twin() -> Option<String> {
    let path = format!("{ROOT}/Cargo.toml.liquid");
    if !std::path::Path::new(&path).exists() {
        println!(
            "SKIP template twin: no Cargo.toml.liquid (a project generated from the template)"
        );
        return None;
    }
    Some(read("Cargo.toml.liquid"))
}

#[test]
fn cargo_toml_liquid_differs_only_in_the_package_name() {
    let Some(liquid) = template_twin() else {
        return;
    };
    let plain = read("Cargo.toml");
    let plain: Vec<&str> = plain.lines().collect();
    let liquid: Vec<&str> = liquid.lines().collect();
    assert_eq!(
        plain.len(),
        liquid.len(),
        "Cargo.toml and Cargo.toml.liquid must have the same lines (apart from the names): edit both"
    );
    let mut section = "";
    let mut seen = BTreeSet::new();
    for (n, (p, l)) in plain.iter().zip(&liquid).enumerate() {
        if p.starts_with('[') {
            section = p;
        }
        if p == l {
            assert!(
                !l.contains("{{") && !l.contains("{%"),
                "line {}: a placeholder in a line that Cargo.toml has too",
                n + 1
            );
            continue;
        }
        let allowed = ALLOWED
            .iter()
            .position(|(s, a, b)| *s == section && a == p && b == l)
            .unwrap_or_else(|| {
                panic!(
                    "line {} differs and should not:\n  Cargo.toml:        {p}\n  Cargo.toml.liquid: {l}",
                    n + 1
                )
            });
        assert!(seen.insert(allowed), "line {}: a second rename", n + 1);
    }
    assert_eq!(
        seen.len(),
        ALLOWED.len(),
        "Cargo.toml.liquid must rename the package"
    );
}

#[test]
fn cargo_generate_toml_keeps_liquid_away_from_askama() {
    if template_twin().is_none() {
        return;
    }
    let config: toml::Table = read("cargo-generate.toml").parse().expect("valid TOML");
    let template = config["template"].as_table().expect("[template]");
    let list = |key: &str| -> Vec<String> {
        template
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let exclude = list("exclude");
    let ignore = list("ignore");
    for dir in ["templates", "static", "src", "tests", "docs"] {
        assert!(
            exclude.iter().any(|e| e == &format!("{dir}/*")),
            "{dir}/ must be excluded from Liquid"
        );
    }
    for dir in ["target", "data"] {
        assert!(ignore.iter().any(|e| e == dir), "{dir}/ must not be copied");
    }
    assert!(
        !template.contains_key("include"),
        "`include` would override `exclude`"
    );
}
