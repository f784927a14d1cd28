//! The message-definition model: parsing Kafka's JSON message specs.

use serde_json::Value;

/// An inclusive range of versions; empty when `min > max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Versions {
    pub min: i16,
    pub max: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { min: 1, max: 0 };

    pub fn parse(s: &str) -> Result<Versions, String> {
        let s = s.trim();
        if s == "none" {
            return Ok(Versions::NONE);
        }
        let num = |x: &str| {
            x.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {x:?}: {e}"))
        };
        if let Some(a) = s.strip_suffix('+') {
            return Ok(Versions {
                min: num(a)?,
                max: i16::MAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Ok(Versions {
                min: num(a)?,
                max: num(b)?,
            });
        }
        let v = num(s)?;
        Ok(Versions { min: v, max: v })
    }

    pub fn is_empty(&self) -> bool {
        self.min > self.max
    }

    pub fn intersect(&self, o: &Versions) -> Versions {
        Versions {
            min: self.min.max(o.min),
            max: self.max.min(o.max),
        }
    }

    pub fn contains_all(&self, o: &Versions) -> bool {
        o.is_empty() || (self.min <= o.min && self.max >= o.max)
    }

    pub fn describe(&self) -> String {
        if self.is_empty() {
            "none".to_string()
        } else if self.max == i16::MAX {
            format!("{}+", self.min)
        } else if self.min == self.max {
            format!("{}", self.min)
        } else {
            format!("{}-{}", self.min, self.max)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Float64,
    String,
    Bytes,
    Records,
    Uuid,
    Struct(String),
    Array(Box<Type>),
}

impl Type {
    pub fn parse(s: &str) -> Result<Type, String> {
        if let Some(inner) = s.strip_prefix("[]") {
            let t = Type::parse(inner)?;
            if matches!(t, Type::Array(_)) {
                return Err(format!("nested arrays are not supported: {s}"));
            }
            return Ok(Type::Array(Box::new(t)));
        }
        Ok(match s {
            "bool" => Type::Bool,
            "int8" => Type::Int8,
            "int16" => Type::Int16,
            "uint16" => Type::Uint16,
            "int32" => Type::Int32,
            "uint32" => Type::Uint32,
            "int64" => Type::Int64,
            "float64" => Type::Float64,
            "string" => Type::String,
            "bytes" => Type::Bytes,
            "records" => Type::Records,
            "uuid" => Type::Uuid,
            _ if s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Type::Struct(s.to_string())
            }
            _ => return Err(format!("unknown type {s:?}")),
        })
    }

    pub fn struct_name(&self) -> Option<&str> {
        match self {
            Type::Struct(n) => Some(n),
            Type::Array(t) => t.struct_name(),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Header,
    Data,
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub ty: Type,
    pub versions: Versions,
    pub nullable: Option<Versions>,
    pub tagged: Option<Versions>,
    pub tag: Option<u32>,
    pub default: Option<String>,
    pub flexible: Option<Versions>,
    pub fields: Option<Vec<Field>>,
}

#[derive(Clone, Debug)]
pub struct StructDef {
    pub name: String,
    pub versions: Versions,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub name: String,
    pub kind: Kind,
    pub api_key: Option<i16>,
    pub valid: Versions,
    pub flexible: Versions,
    pub latest_unstable: bool,
    pub fields: Vec<Field>,
    pub common_structs: Vec<StructDef>,
}

/// Removes `//` line comments (outside of strings).
pub fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut cut = line.len();
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else if c == b'"' {
                in_str = true;
            } else if c == b'/' && bytes.get(i + 1) == Some(&b'/') {
                cut = i;
                break;
            }
            i += 1;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn req_str<'a>(v: &'a Value, key: &str, ctx: &str) -> Result<&'a str, String> {
    get_str(v, key).ok_or_else(|| format!("{ctx}: missing string {key:?}"))
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_fields(v: &Value, ctx: &str) -> Result<Vec<Field>, String> {
    let arr = match v.get("fields") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(format!("{ctx}: fields is not an array")),
    };
    arr.iter().map(|f| parse_field(f, ctx)).collect()
}

fn parse_field(v: &Value, ctx: &str) -> Result<Field, String> {
    let name = req_str(v, "name", ctx)?.to_string();
    let ctx = format!("{ctx}.{name}");
    let ty = Type::parse(req_str(v, "type", &ctx)?).map_err(|e| format!("{ctx}: {e}"))?;
    let versions = Versions::parse(req_str(v, "versions", &ctx)?)?;
    let opt_versions = |key: &str| -> Result<Option<Versions>, String> {
        get_str(v, key).map(Versions::parse).transpose()
    };
    let nullable = opt_versions("nullableVersions")?;
    let tagged = opt_versions("taggedVersions")?;
    let flexible = opt_versions("flexibleVersions")?;
    let tag = match v.get("tag") {
        None => None,
        Some(t) => Some(
            scalar_string(t)
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| format!("{ctx}: bad tag"))?,
        ),
    };
    if tagged.is_some() != tag.is_some() {
        return Err(format!("{ctx}: tag and taggedVersions must go together"));
    }
    if let Some(t) = tagged {
        if t.max != i16::MAX {
            return Err(format!("{ctx}: taggedVersions must be open-ended"));
        }
    }
    let default = v.get("default").and_then(scalar_string);
    let fields = if v.get("fields").is_some() {
        Some(parse_fields(v, &ctx)?)
    } else {
        None
    };
    if fields.is_some() && ty.struct_name().is_none() {
        return Err(format!("{ctx}: fields on a non-struct type"));
    }
    Ok(Field {
        name,
        ty,
        versions,
        nullable,
        tagged,
        tag,
        default,
        flexible,
        fields,
    })
}

pub fn parse_message(src: &str, file: &str) -> Result<Message, String> {
    let v: Value =
        serde_json::from_str(&strip_comments(src)).map_err(|e| format!("{file}: {e}"))?;
    let name = req_str(&v, "name", file)?.to_string();
    let kind = match req_str(&v, "type", file)? {
        "request" => Kind::Request,
        "response" => Kind::Response,
        "header" => Kind::Header,
        "data" | "metadata" => Kind::Data,
        other => return Err(format!("{file}: unknown message type {other:?}")),
    };
    let api_key = match v.get("apiKey") {
        None => None,
        Some(k) => Some(
            k.as_i64()
                .and_then(|k| i16::try_from(k).ok())
                .ok_or_else(|| format!("{file}: bad apiKey"))?,
        ),
    };
    if matches!(kind, Kind::Request | Kind::Response) && api_key.is_none() {
        return Err(format!("{file}: request/response without apiKey"));
    }
    let valid = Versions::parse(req_str(&v, "validVersions", file)?)?;
    let flexible = Versions::parse(req_str(&v, "flexibleVersions", file)?)?;
    let latest_unstable = v
        .get("latestVersionUnstable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let fields = parse_fields(&v, &name)?;
    let mut common_structs = Vec::new();
    if let Some(Value::Array(cs)) = v.get("commonStructs") {
        for c in cs {
            let cname = req_str(c, "name", file)?.to_string();
            let versions = Versions::parse(get_str(c, "versions").unwrap_or("0+"))?;
            let fields = parse_fields(c, &cname)?;
            common_structs.push(StructDef {
                name: cname,
                versions,
                fields,
            });
        }
    }
    Ok(Message {
        name,
        kind,
        api_key,
        valid,
        flexible,
        latest_unstable,
        fields,
        common_structs,
    })
}
