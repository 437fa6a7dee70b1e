//! The JSON case file as typed serde structs, read leniently: every field is a [`Lenient`] that
//! keeps a value of the wrong JSON type instead of failing, and each object keeps its unknown
//! fields, so any well-formed JSON document deserializes and the validator can name every
//! problem with its place. Kind-specific case event fields stay a map (checked against the
//! validator's per-kind field table).

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, IntoDeserializer};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;

/// A whole file: an object (the case file) or, wrongly, something else.
pub type Document = Lenient<CaseFile>;

/// Read a case file. Fails only on JSON that is not well-formed (the message is serde_json's).
pub fn parse(text: &str) -> Result<Document, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(doc) => Ok(doc),
        // Typed reading refuses a key given twice, where JSON lets the last one stand: read as
        // a plain value (which also gives the syntax error, if that is what it was), then again.
        Err(_) => Document::deserialize(serde_json::from_str::<Value>(text)?),
    }
}

/// A field or list item as the file gave it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Lenient<T> {
    /// Not in the file.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the expected JSON type.
    Good(T),
    /// A value of another JSON type, as given.
    Wrong(Value),
}

impl<T> Lenient<T> {
    pub fn good(&self) -> Option<&T> {
        match self {
            Lenient::Good(v) => Some(v),
            _ => None,
        }
    }
}

/// The JSON type a [`Lenient`] value must have to be `Good`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Bool,
    /// A whole number from 0 up.
    Unsigned,
    Array,
    Object,
}

/// What a [`Lenient`] field holds when it is `Good`.
pub trait Expected {
    const JSON: JsonType;
}

impl Expected for String {
    const JSON: JsonType = JsonType::String;
}
impl Expected for bool {
    const JSON: JsonType = JsonType::Bool;
}
impl Expected for u64 {
    const JSON: JsonType = JsonType::Unsigned;
}
impl<T> Expected for Vec<T> {
    const JSON: JsonType = JsonType::Array;
}
impl Expected for Map<String, Value> {
    const JSON: JsonType = JsonType::Object;
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(PhantomData))
    }
}

struct LenientVisitor<T>(PhantomData<T>);

impl<T: Expected> LenientVisitor<T> {
    /// `Good` from a deserializer of the right JSON type, else the value kept as `Wrong`.
    fn take<'de, D, E>(json: JsonType, d: D, wrong: impl FnOnce() -> Value) -> Result<Lenient<T>, E>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de, Error = E>,
    {
        if T::JSON == json {
            T::deserialize(d).map(Lenient::Good)
        } else {
            Ok(Lenient::Wrong(wrong()))
        }
    }
}

impl<'de, T: Deserialize<'de> + Expected> de::Visitor<'de> for LenientVisitor<T> {
    type Value = Lenient<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Self::take(JsonType::Bool, v.into_deserializer(), || Value::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Self::take(JsonType::Unsigned, v.into_deserializer(), || Value::from(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lenient::Wrong(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Lenient::Wrong(Value::from(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Self::take(JsonType::String, v.into_deserializer(), || v.into())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        if T::JSON == JsonType::String {
            T::deserialize(v.into_deserializer()).map(Lenient::Good)
        } else {
            Ok(Lenient::Wrong(Value::String(v)))
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lenient::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let d = SeqAccessDeserializer::new(seq);
        if T::JSON == JsonType::Array {
            T::deserialize(d).map(Lenient::Good)
        } else {
            Value::deserialize(d).map(Lenient::Wrong)
        }
    }
    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let d = MapAccessDeserializer::new(map);
        if T::JSON == JsonType::Object {
            T::deserialize(d).map(Lenient::Good)
        } else {
            Value::deserialize(d).map(Lenient::Wrong)
        }
    }
}

/// `{"role": "person id"}`; a role that several people hold may name a list.
pub type Roles = Map<String, Value>;

macro_rules! objects {
    ($($name:ident),*) => {
        $(impl Expected for $name {
            const JSON: JsonType = JsonType::Object;
        })*
    };
}
objects!(
    CaseFile,
    Agency,
    Person,
    Case,
    CaseEvent,
    Dispute,
    DisputeEvent
);

// Every field may be absent: `#[serde(default)]` makes it `Lenient::Absent`.

/// The file: `{"partnership": …, "agencies": […], "people": […], "partnership_roles": {…},
/// "cases": […], "disputes": […]}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CaseFile {
    pub partnership: Lenient<String>,
    pub agencies: Lenient<Vec<Lenient<Agency>>>,
    pub people: Lenient<Vec<Lenient<Person>>>,
    pub partnership_roles: Lenient<Roles>,
    pub cases: Lenient<Vec<Lenient<Case>>>,
    pub disputes: Lenient<Vec<Lenient<Dispute>>>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Agency {
    pub id: Lenient<String>,
    pub name: Lenient<String>,
    pub roles: Lenient<Roles>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Person {
    pub id: Lenient<String>,
    pub name: Lenient<String>,
    pub email: Lenient<String>,
    pub agency: Lenient<String>,
    pub manager: Lenient<String>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Case {
    #[serde(rename = "ref")]
    pub reference: Lenient<String>,
    pub unborn: Lenient<bool>,
    pub visit_interval_days: Lenient<u64>,
    pub roles: Lenient<Roles>,
    pub events: Lenient<Vec<Lenient<CaseEvent>>>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CaseEvent {
    pub kind: Lenient<String>,
    pub at: Lenient<String>,
    pub recorded_at: Lenient<String>,
    /// The kind-specific fields, and any unknown ones.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Dispute {
    pub id: Lenient<String>,
    pub case: Lenient<String>,
    pub policy: Lenient<String>,
    pub raised_by: Lenient<String>,
    pub respondent: Lenient<String>,
    pub respondent_agency: Lenient<String>,
    pub opened_at: Lenient<String>,
    pub disagreement_at: Lenient<String>,
    pub immediate_risk: Lenient<bool>,
    pub protective_timescale: Lenient<String>,
    pub subject: Lenient<String>,
    pub events: Lenient<Vec<Lenient<DisputeEvent>>>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DisputeEvent {
    pub kind: Lenient<String>,
    pub at: Lenient<String>,
    pub stage: Lenient<u64>,
    pub outcome: Lenient<String>,
    pub by: Lenient<String>,
    #[serde(flatten)]
    pub unknown: Map<String, Value>,
}
