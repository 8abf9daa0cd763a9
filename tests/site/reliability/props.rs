//! Property tests: key validation, and the record encode/decode round trips
//! of the server-side stores' format and of the cookie format.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use websessions::sessions::store::{decode, encode, from_unix_ms};
use websessions::web::site_session::validate_key;

/// Characters that hit every rule: plain, `_`, control (C0, DEL, C1),
/// multi-byte, and astral.
fn key_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just('_'),
        1 => proptest::char::range('\u{0}', '\u{1f}'),
        1 => Just('\u{7f}'),
        1 => proptest::char::range('\u{80}', '\u{9f}'),
        1 => Just('é'),
        1 => Just('🦀'),
        1 => any::<char>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(key_char(), 0..6),
        proptest::collection::vec(key_char(), 120..135),
        proptest::collection::vec(proptest::char::range('a', 'z'), 126..131),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

fn expected(key: &str) -> bool {
    let n = key.chars().count();
    (1..=128).contains(&n) && !key.chars().any(char::is_control) && !key.starts_with('_')
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Any finite f64: the crate enables serde_json's `float_roundtrip`,
        // without which a value could come back one ULP off.
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::hash_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<u128>(),
        proptest::collection::hash_map(any::<String>(), json_value(), 0..8),
        // Unix milliseconds between 1970 and 2200.
        0i64..7_258_118_400_000,
    )
        .prop_map(|(id, data, ms)| Record {
            id: Id(id as i128),
            data: data.into_iter().collect::<HashMap<_, _>>(),
            expiry_date: from_unix_ms(ms),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validate_key_accepts_exactly_the_documented_keys(key in key()) {
        prop_assert_eq!(validate_key(&key).is_ok(), expected(&key), "key {:?}", key);
    }

    #[test]
    fn server_side_format_round_trips_and_leaves_the_id_out(record in record()) {
        let bytes = encode(&record).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        prop_assert!(!text.contains(&record.id.to_string()));
        let back = decode(record.id, &bytes).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn cookie_format_round_trips(record in record()) {
        let value = tower_sessions_cookie_store::encode_record(&record).unwrap();
        prop_assert!(value.bytes().all(|b| b.is_ascii_graphic()), "a cookie-safe value");
        let back = tower_sessions_cookie_store::decode_record(&value).unwrap();
        prop_assert_eq!(back, record);
    }

    #[test]
    fn decode_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(Id::default(), &bytes);
        let _ = tower_sessions_cookie_store::decode_record(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn validate_key_boundaries() {
    assert!(validate_key(&"k".repeat(128)).is_ok());
    assert!(
        validate_key(&"é".repeat(128)).is_ok(),
        "characters, not bytes"
    );
    assert!(validate_key(&"k".repeat(129)).is_err());
    assert!(validate_key("").is_err());
    assert!(validate_key("_x").is_err());
    assert!(validate_key("x_").is_ok());
    assert!(validate_key("a\u{85}b").is_err(), "C1 control");
    let _ = OffsetDateTime::UNIX_EPOCH;
}
