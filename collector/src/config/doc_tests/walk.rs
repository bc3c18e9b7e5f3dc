//! The schema's keys, from its types: a deserializer that walks [`RawConfig`], asked by serde's
//! derived code for every field of every struct, records each key and the kind of value it takes.

use crate::config::schema::RawConfig;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// What a key of the schema takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Str,
    Bool,
    Int,
    List,
    /// A block with no keys (`{}`).
    Empty,
    /// One of these values.
    Enum(Vec<&'static str>),
}

/// Every leaf key of the schema (dotted), with its kind.
pub fn schema_keys() -> BTreeMap<String, Kind> {
    let out = RefCell::new(BTreeMap::new());
    <RawConfig as de::Deserialize>::deserialize(Walk {
        path: "",
        out: &out,
    })
    .expect("the walk gives every field a value of its type");
    out.into_inner()
}

#[derive(Debug)]
struct WalkError(String);

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

/// Answers every request of a derived `Deserialize` with a value of the kind asked for,
/// recording the key it is at.
#[derive(Clone, Copy)]
struct Walk<'a> {
    path: &'a str,
    out: &'a RefCell<BTreeMap<String, Kind>>,
}

impl Walk<'_> {
    fn leaf(&self, kind: Kind) {
        self.out.borrow_mut().insert(self.path.to_string(), kind);
    }
}

struct Fields<'a> {
    parent: &'a str,
    names: std::slice::Iter<'static, &'static str>,
    current: String,
    out: &'a RefCell<BTreeMap<String, Kind>>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = WalkError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some(name) = self.names.next() else {
            return Ok(None);
        };
        self.current = if self.parent.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.parent)
        };
        seed.deserialize((*name).into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let path = std::mem::take(&mut self.current);
        seed.deserialize(Walk {
            path: &path,
            out: self.out,
        })
    }
}

struct NoItems;

impl<'de> SeqAccess<'de> for NoItems {
    type Error = WalkError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        _: T,
    ) -> Result<Option<T::Value>, WalkError> {
        Ok(None)
    }
}

impl<'de> de::Deserializer<'de> for Walk<'_> {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WalkError> {
        Err(WalkError(format!(
            "{}: a type the walk does not know (teach doc_tests.rs)",
            self.path
        )))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        if fields.is_empty() {
            self.leaf(Kind::Empty);
        }
        visitor.visit_map(Fields {
            parent: self.path,
            names: fields.iter(),
            current: String::new(),
            out: self.out,
        })
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_some(self)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.leaf(Kind::Str);
        visitor.visit_str("x")
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.deserialize_str(visitor)
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.leaf(Kind::Bool);
        visitor.visit_bool(false)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.leaf(Kind::Int);
        visitor.visit_u64(1)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.deserialize_u64(visitor)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.leaf(Kind::List);
        visitor.visit_seq(NoItems)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.leaf(Kind::Enum(variants.to_vec()));
        visitor.visit_enum(variants[0].into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct map identifier ignored_any
    }
}
