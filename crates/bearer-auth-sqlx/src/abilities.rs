//! The `abilities` column: JSON as Laravel's `json` cast writes it (PHP's `json_encode`
//! with no flags), and read back however it was written.

use bearer_auth::Abilities;

/// `abilities` as PHP's `json_encode` writes a list of strings: `/` escaped as `\/`,
/// every non-ASCII character as `\uXXXX` (UTF-16, lower-case hex), so that the bytes are
/// those a Sanctum app would have stored.
pub(crate) fn encode(abilities: &Abilities) -> String {
    let mut out = String::from("[");
    for (i, ability) in abilities.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in ability.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '/' => out.push_str("\\/"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
                '\u{7f}' => out.push(c),
                c => {
                    let mut units = [0_u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// Reads the column: a JSON list of names (an object's values count too, as PHP reads
/// them); anything else, `NULL` included, grants nothing.
pub(crate) fn decode(column: Option<&str>) -> Abilities {
    let Some(text) = column else {
        return Abilities::none();
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Array(items)) => names(items),
        Ok(serde_json::Value::Object(map)) => names(map.into_iter().map(|(_, v)| v)),
        _ => Abilities::none(),
    }
}

fn names(items: impl IntoIterator<Item = serde_json::Value>) -> Abilities {
    items
        .into_iter()
        .filter_map(|item| match item {
            serde_json::Value::String(name) => Some(name),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_php_json_encode_does() {
        // php -r 'echo json_encode(["*"]);'
        assert_eq!(encode(&Abilities::all()), r#"["*"]"#);
        // php -r 'echo json_encode(["servers:read","a/b","é","😀","\"q\\\\", "\x01"]);'
        let abilities = Abilities::new(["servers:read", "a/b", "é", "😀", "\"q\\\\", "\u{1}"]);
        assert_eq!(
            encode(&abilities),
            r#"["servers:read","a\/b","\u00e9","\ud83d\ude00","\"q\\\\","\u0001"]"#
        );
        assert_eq!(encode(&Abilities::none()), "[]");
    }

    #[test]
    fn decodes_what_php_and_others_write() {
        let read = |s| {
            decode(Some(s))
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(read(r#"["*"]"#), ["*"]);
        assert_eq!(read(r#"["a\/b","\u00e9"]"#), ["a/b", "é"]);
        assert_eq!(read(r#"{"0":"read","1":"write"}"#), ["read", "write"]);
        assert_eq!(read(r#"["read", 1, null]"#), ["read"]);
        assert!(read("not json").is_empty());
        assert!(read(r#""*""#).is_empty());
        assert!(decode(None).is_empty());
    }

    #[test]
    fn round_trips() {
        let abilities = Abilities::new(["servers:read", "a/b", "ünï", "\t"]);
        let back = decode(Some(&encode(&abilities)));
        assert_eq!(back, abilities);
    }
}
