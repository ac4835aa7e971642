//! Reading the small JSON control messages of the carriers that send audio as binary frames
//! (Vonage here, jambonz too): borrowed serde shapes that never fail on a value of the wrong type.
//!
//! Why not plain `Option<Cow<str>>` fields: a value of the wrong type would be a serde error,
//! which names no field (and is a boxed string). Here a wrong value becomes [`Text::Other`] or
//! [`Field::Other`] and the dialect answers `WrongType` naming the field; the only serde errors
//! left are JSON syntax errors and duplicate keys, both `MalformedJson`.
//!
//! Strings are borrowed from the message (`Cow::Borrowed`; only a string with escapes is owned),
//! so reading a mark echo or a key press allocates nothing unless it is escaped. Unknown fields
//! are skipped with serde's `IgnoredAny`: serde_json skips them iteratively (no recursion, so no
//! depth limit, and memory bounded by the message), allocating only for arrays or objects nested
//! two deep, which none of these messages holds where a carrier writes it; none carries audio.
//!
//! Used by the Vonage and jambonz dialects; it has no Vonage in it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::protocol::ProtocolError;

/// A JSON value where a string is expected: the string, or `Other` for any other value (read and
/// dropped). `null` is an absent field: read it as `Option<Text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text<'a> {
    /// A string, borrowed unless it had escapes.
    Str(Cow<'a, str>),
    /// A number, a boolean, an array or an object.
    Other,
}

impl<'a> Text<'a> {
    /// The string of a field `field` that must be one if present.
    pub(crate) fn string(
        value: Option<Self>,
        field: &'static str,
    ) -> Result<Option<Cow<'a, str>>, ProtocolError> {
        match value {
            None => Ok(None),
            Some(Text::Str(s)) => Ok(Some(s)),
            Some(Text::Other) => Err(ProtocolError::WrongType(field)),
        }
    }

    /// The string of a required field `field`.
    pub(crate) fn required(value: Option<Self>, field: &'static str) -> Result<Cow<'a, str>, ProtocolError> {
        Self::string(value, field)?.ok_or(ProtocolError::MissingField(field))
    }
}

/// Reads and drops the elements of an array or the entries of an object.
fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        // Only reached for strings with escapes (serde_json unescaped them into its scratch).
        Ok(Text::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        // Only reached outside an `Option` (an array element, say): not a string either.
        Ok(Text::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Text::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map)?;
        Ok(Text::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// A field that may hold an object (read as `T`) or a string (a carrier variant).
#[derive(Debug, Default)]
pub(crate) enum Field<'a, T> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// A string, borrowed unless it had escapes.
    Str(Cow<'a, str>),
    /// An object.
    Object(T),
    /// A number, a boolean or an array.
    Other,
}

struct FieldVisitor<'a, T>(PhantomData<(&'a (), T)>);

impl<'de: 'a, 'a, T: Deserialize<'de>> Visitor<'de> for FieldVisitor<'a, T> {
    type Value = Field<'a, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Field::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Field::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Absent)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq)?;
        Ok(Field::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Field::Object)
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Field<'a, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// A whole JSON object, its entries in document order (duplicates kept), each value as
/// serde_json reads it. For the one message of a call that starts it: it allocates.
///
/// Why a visitor: serde_json's own map (without its `preserve_order` feature) sorts keys, and the
/// host may care about the order its custom data was written in.
#[derive(Debug, Default)]
pub(crate) struct Ordered(pub(crate) Vec<(String, serde_json::Value)>);

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Ordered(entries))
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OrderedVisitor)
    }
}

impl Ordered {
    /// Parses `text`, which must be one JSON object and nothing else (`MalformedJson` otherwise).
    pub(crate) fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|_| ProtocolError::MalformedJson)
    }

    /// The value of `key`, which must appear at most once (`MalformedJson` otherwise: with two,
    /// which one counts would be up to the parser); `null` counts as absent.
    pub(crate) fn unique(&self, key: &str) -> Result<Option<&serde_json::Value>, ProtocolError> {
        let mut found = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v);
        let first = found.next();
        if found.next().is_some() {
            return Err(ProtocolError::MalformedJson);
        }
        Ok(first.filter(|v| !v.is_null()))
    }
}

/// A value as custom data: a string as it is, anything else (number, boolean, `null`, array,
/// object) as its compact JSON text (serde_json's rendering: `1.50` becomes `1.5`, an object's
/// keys are sorted).
pub(crate) fn parameter_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A number field's value: a non-negative JSON integer, or a string of ASCII digits.
pub(crate) fn number(value: &serde_json::Value, field: &'static str) -> Result<u64, ProtocolError> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().ok_or(ProtocolError::WrongType(field)),
        // Why check the digits first: `u64::from_str` also takes a leading `+`.
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| ProtocolError::WrongType(field))
        }
        _ => Err(ProtocolError::WrongType(field)),
    }
}

/// Parses `text` as one JSON object into the derived shape `T`. A top-level array is refused
/// before serde sees it: a derived struct would otherwise read one as its fields in order.
pub(crate) fn parse_object<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ProtocolError> {
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(ProtocolError::MalformedJson);
    }
    serde_json::from_str(text).map_err(|_| ProtocolError::MalformedJson)
}

/// The digit of a key press: exactly one of `0`-`9`, `*`, `#`, `A`-`D`.
pub(crate) fn dtmf_digit(text: &str) -> Option<u8> {
    match text.as_bytes() {
        &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => Some(d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Body<'a> {
        #[serde(borrow)]
        name: Option<Text<'a>>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Shape<'a> {
        #[serde(borrow)]
        a: Option<Text<'a>>,
        #[serde(borrow)]
        b: Field<'a, Body<'a>>,
    }

    #[test]
    fn strings_are_borrowed_unless_escaped_and_other_values_are_other() {
        let s: Shape<'_> = parse_object(r#"{"a":"x","b":{"name":"n"}}"#).unwrap();
        assert!(matches!(s.a, Some(Text::Str(Cow::Borrowed("x")))));
        assert!(matches!(s.b, Field::Object(Body { name: Some(Text::Str(Cow::Borrowed("n"))) })));
        let s: Shape<'_> = parse_object(r#"{"a":"\u0041","b":"s","z":[[{}]]}"#).unwrap();
        assert!(matches!(s.a, Some(Text::Str(Cow::Owned(ref a))) if a == "A"));
        assert!(matches!(s.b, Field::Str(Cow::Borrowed("s"))));
        for other in ["1", "-1", "1.5", "true", "[1]", "{\"k\":1}"] {
            let text = format!(r#"{{"a":{other}}}"#);
            let s: Shape<'_> = parse_object(&text).unwrap();
            assert_eq!(s.a, Some(Text::Other), "{other}");
        }
        let s: Shape<'_> = parse_object(r#"{"a":null,"b":null}"#).unwrap();
        assert!(s.a.is_none() && matches!(s.b, Field::Absent));
        let s: Shape<'_> = parse_object(r#"{"b":[1]}"#).unwrap();
        assert!(matches!(s.b, Field::Other));
    }

    #[test]
    fn syntax_errors_duplicates_and_non_objects_are_malformed() {
        for bad in
            [r#"{"a":"x","a":"y"}"#, r#"{"b":{"name":"x","name":"y"}}"#, "[\"x\"]", "{", "{} x", "\"a\""]
        {
            assert_eq!(parse_object::<Shape<'_>>(bad).err(), Some(ProtocolError::MalformedJson), "{bad}");
        }
    }

    #[test]
    fn ordered_keeps_document_order_and_finds_unique_keys() {
        let o = Ordered::parse(r#"{"z":1,"a":"x","z":2,"n":null}"#).unwrap();
        let keys: Vec<_> = o.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "z", "n"]);
        assert_eq!(o.unique("n"), Ok(None));
        assert_eq!(o.unique("a"), Ok(Some(&serde_json::json!("x"))));
        assert_eq!(o.unique("z"), Err(ProtocolError::MalformedJson));
        assert_eq!(o.unique("q"), Ok(None));
        assert_eq!(Ordered::parse("[]").err(), Some(ProtocolError::MalformedJson));
    }

    #[test]
    fn numbers_accept_digit_strings_and_non_negative_integers_only() {
        use serde_json::json;
        assert_eq!(number(&json!(16000), "f"), Ok(16000));
        assert_eq!(number(&json!("8000"), "f"), Ok(8000));
        for bad in [json!(-1), json!(1.5), json!("+1"), json!(""), json!("1 "), json!(null), json!([1])] {
            assert_eq!(number(&bad, "f"), Err(ProtocolError::WrongType("f")), "{bad}");
        }
    }
}
