//! The config file: no text, however broken, makes parsing or checking it
//! panic; a bad file is an error that names what is wrong.

use keyward::config::FileSettings;
use proptest::prelude::*;

const CASES: u32 = 2_000;

/// Pieces of plausible config files, so that cases get past the TOML parser
/// into the checks of `[ext_authz]` and its rules.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[ext_authz]\n".to_owned()),
        Just("[[ext_authz.routes]]\n".to_owned()),
        Just("default_route = \"deny\"\n".to_owned()),
        Just("default_route = \"any_valid_key\"\n".to_owned()),
        Just("case_sensitive = true\n".to_owned()),
        Just("xff_trusted_hops = 4294967296\n".to_owned()),
        Just("key_headers = []\n".to_owned()),
        Just("authorization_header = \"\"\n".to_owned()),
        Just("authorization_schemes = []\n".to_owned()),
        Just("query_param = \"api_key\"\n".to_owned()),
        Just("scopes = [\"a:*\"]\n".to_owned()),
        Just("scopes = []\n".to_owned()),
        Just("methods = []\n".to_owned()),
        Just("methods = [\"get\", \"P0ST\"]\n".to_owned()),
        "path = \"[/a-z*%;.A-F0-9]{0,12}\"\n",
        "path_prefix = \"[/a-z*%;.]{0,8}\"\n",
        "[a-z_]{1,12} = [0-9a-z\"\\[\\]]{0,6}\n",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = FileSettings::from_text(&text);
    }

    #[test]
    fn config_shaped_text_never_panics(parts in prop::collection::vec(fragment(), 0..12)) {
        let text = parts.concat();
        if let Err(error) = FileSettings::from_text(&text) {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
