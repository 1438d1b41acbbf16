//! Property tests: the template, machine-class and lab parsers return a value or an error
//! for any input — they never panic. Inputs are arbitrary text, and mutations of the real
//! fixtures (so the generator reaches deep into valid structure, not only syntax errors).

use std::path::Path;

use harness::model::lab::LabFile;
use harness::model::machine_class::MachineClassFile;
use harness::model::template::ClusterTemplate;
use proptest::prelude::*;

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(rel),
    )
    .unwrap()
}

/// Apply byte-level edits (delete / insert a YAML- or TOML-significant fragment / swap)
/// to `base`, on char boundaries.
fn mutate(base: String) -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        ":",
        "- ",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "|",
        ">",
        "&a ",
        "*a",
        "!!str ",
        "#",
        "---\n",
        "...\n",
        "kind: Cluster\n",
        "kind: ControlPlane\n",
        "size: unlimited",
        "size: -1",
        "name: \"\"",
        "$patch: delete",
        "providerdata: |\n  cores: x\n",
        "storage_selector: type == 1",
        "= ",
        "[[x]]\n",
        "\t",
        "\u{0}",
        "∞",
        "99999999999999999999999",
    ]);
    prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, fragments), 1..8).prop_map(
        move |edits| {
            let mut s = base.clone();
            for (at, op, frag) in edits {
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                match op {
                    0 => {
                        let end = (i + frag.len()).min(s.len());
                        let mut end = end;
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(i..end, "");
                    }
                    _ => s.insert_str(i, frag),
                }
            }
            s
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn template_parser_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = ClusterTemplate::parse(Path::new("t.yaml"), &s);
    }

    #[test]
    fn template_parser_never_panics_on_mutated_templates(s in mutate(fixture("seed/clusters/talos-prod-01.yaml"))) {
        let _ = ClusterTemplate::parse(Path::new("t.yaml"), &s);
    }

    #[test]
    fn machine_class_parser_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = MachineClassFile::parse(Path::new("c.yaml"), &s);
    }

    #[test]
    fn machine_class_parser_never_panics_on_mutated_classes(s in mutate(fixture("seed/machine-classes/matrix-worker.yaml"))) {
        let _ = MachineClassFile::parse(Path::new("c.yaml"), &s);
    }

    #[test]
    fn lab_parser_never_panics_on_arbitrary_text(s in "\\PC*") {
        let _ = LabFile::parse(Path::new("lab.toml"), &s);
    }

    #[test]
    fn lab_parser_never_panics_on_mutated_labs(s in mutate(fixture("seed/lab.toml"))) {
        let _ = LabFile::parse(Path::new("lab.toml"), &s);
    }
}
