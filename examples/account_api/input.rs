//! Request fields checked as Laravel's validator checks them, with its English messages.
//!
//! Strings are trimmed and an empty string counts as missing (Laravel's `TrimStrings`
//! and `ConvertEmptyStringsToNull` middleware); passwords are not trimmed, as
//! `TrimStrings` leaves them alone.

use serde_json::Value;
use validator::ValidateEmail as _;

use crate::errors::Errors;

/// A field's name as Laravel shows it in messages: `expires_at` is "expires at".
fn label(field: &str) -> String {
    field.replace('_', " ")
}

/// Whether Laravel's `required` fails: missing, null, an empty (or blank) string, an
/// empty array.
fn is_empty(value: Option<&Value>, trim: bool) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => {
            if trim {
                s.trim().is_empty()
            } else {
                s.is_empty()
            }
        }
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// How a string field is read.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    required: bool,
    trim: bool,
    min: Option<usize>,
    max: Option<usize>,
    email: bool,
}

impl Rules {
    /// `required|string`, trimmed.
    pub const fn required() -> Self {
        Self {
            required: true,
            trim: true,
            min: None,
            max: None,
            email: false,
        }
    }

    /// `nullable|string`, trimmed.
    pub const fn optional() -> Self {
        Self {
            required: false,
            ..Self::required()
        }
    }

    /// Not trimmed (a password).
    pub const fn untrimmed(self) -> Self {
        Self {
            trim: false,
            ..self
        }
    }

    /// `min:n` characters.
    pub const fn min(self, n: usize) -> Self {
        Self {
            min: Some(n),
            ..self
        }
    }

    /// `max:n` characters.
    pub const fn max(self, n: usize) -> Self {
        Self {
            max: Some(n),
            ..self
        }
    }

    /// `email`.
    pub const fn email(self) -> Self {
        Self {
            email: true,
            ..self
        }
    }
}

/// Reads the string field `field` by `rules`, adding Laravel's message to `errors` when
/// it fails. `None` when it failed or is absent (and optional).
pub fn string(
    value: Option<&Value>,
    field: &str,
    rules: Rules,
    errors: &mut Errors,
) -> Option<String> {
    let name = label(field);
    if is_empty(value, rules.trim) {
        if rules.required {
            errors.add(field, format!("The {name} field is required."));
            return None;
        }
        // Absent, null or blank: absent. An empty array fails `required`, but is a value
        // all the same, not a string (Laravel's `nullable` skips null only).
        if !matches!(value, Some(Value::Array(_))) {
            return None;
        }
    }
    let Some(Value::String(s)) = value else {
        errors.add(field, format!("The {name} field must be a string."));
        return None;
    };
    let s = if rules.trim { s.trim() } else { s.as_str() };
    // PostgreSQL's text cannot hold NUL, and no field here has a use for it.
    if s.contains('\0') {
        errors.add(
            field,
            format!("The {name} field must not contain null characters."),
        );
        return None;
    }
    let chars = s.chars().count();
    if let Some(min) = rules.min.filter(|&min| chars < min) {
        errors.add(
            field,
            format!("The {name} field must be at least {min} characters."),
        );
        return None;
    }
    if let Some(max) = rules.max.filter(|&max| chars > max) {
        errors.add(
            field,
            format!("The {name} field must not be greater than {max} characters."),
        );
        return None;
    }
    if rules.email && !s.validate_email() {
        errors.add(
            field,
            format!("The {name} field must be a valid email address."),
        );
        return None;
    }
    Some(s.to_owned())
}

/// Reads `nullable|array` of `required|string|max:max` items. `None` when absent.
pub fn string_array(
    value: Option<&Value>,
    field: &str,
    max_items: usize,
    max: usize,
    errors: &mut Errors,
) -> Option<Vec<String>> {
    let name = label(field);
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            if items.len() > max_items {
                errors.add(
                    field,
                    format!("The {name} field must not have more than {max_items} items."),
                );
                return None;
            }
            let before = errors.count();
            let out: Vec<String> = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    string(
                        Some(item),
                        &format!("{field}.{i}"),
                        Rules::required().max(max),
                        errors,
                    )
                })
                .collect();
            (errors.count() == before).then_some(out)
        }
        Some(_) => {
            errors.add(field, format!("The {name} field must be an array."));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(value: Value, rules: Rules) -> Result<String, String> {
        let mut errors = Errors::default();
        match string(Some(&value), "expires_at", rules, &mut errors) {
            Some(s) => Ok(s),
            None => Err(serde_json::to_string(&errors).unwrap()),
        }
    }

    #[test]
    fn required_and_string() {
        let msg = r#"{"expires_at":["The expires at field is required."]}"#;
        assert_eq!(check(json!(null), Rules::required()), Err(msg.into()));
        assert_eq!(check(json!("  "), Rules::required()), Err(msg.into()));
        assert_eq!(check(json!([]), Rules::required()), Err(msg.into()));
        let not_string = r#"{"expires_at":["The expires at field must be a string."]}"#;
        assert_eq!(check(json!(5), Rules::required()), Err(not_string.into()));
        assert_eq!(
            check(json!({"a":1}), Rules::required()),
            Err(not_string.into())
        );
        assert_eq!(check(json!(" x "), Rules::required()), Ok("x".into()));
        assert_eq!(
            check(json!(" x "), Rules::required().untrimmed()),
            Ok(" x ".into())
        );
        let mut errors = Errors::default();
        assert_eq!(string(None, "a", Rules::optional(), &mut errors), None);
        assert_eq!(
            string(Some(&json!(null)), "a", Rules::optional(), &mut errors),
            None
        );
        assert_eq!(
            string(Some(&json!(" ")), "a", Rules::optional(), &mut errors),
            None
        );
        assert!(!errors.has("a"));
    }

    #[test]
    fn an_empty_array_is_not_an_absent_optional_string() {
        assert_eq!(
            check(json!([]), Rules::optional()),
            Err(r#"{"expires_at":["The expires at field must be a string."]}"#.into())
        );
    }

    #[test]
    fn lengths_count_characters() {
        assert_eq!(
            check(json!("ééééééé"), Rules::required().min(8)),
            Err(r#"{"expires_at":["The expires at field must be at least 8 characters."]}"#.into())
        );
        assert_eq!(
            check(json!("éééééééé"), Rules::required().min(8)),
            Ok("éééééééé".into())
        );
        assert_eq!(
            check(json!("abc"), Rules::required().max(2)),
            Err(
                r#"{"expires_at":["The expires at field must not be greater than 2 characters."]}"#
                    .into()
            )
        );
    }

    #[test]
    fn nul_is_refused_everywhere() {
        let msg = r#"{"expires_at":["The expires at field must not contain null characters."]}"#;
        for rules in [Rules::required(), Rules::optional().untrimmed()] {
            assert_eq!(check(json!("a\u{0}b"), rules), Err(msg.into()));
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            check(json!("ada@example.com"), Rules::required().email()),
            Ok("ada@example.com".into())
        );
        for bad in ["ada", "ada@", "@example.com", "a b@example.com"] {
            assert_eq!(
                check(json!(bad), Rules::required().email()),
                Err(
                    r#"{"expires_at":["The expires at field must be a valid email address."]}"#
                        .into()
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn arrays_of_strings() {
        let mut errors = Errors::default();
        assert_eq!(
            string_array(Some(&json!(["a", "b"])), "abilities", 10, 5, &mut errors),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(string_array(None, "abilities", 10, 5, &mut errors), None);
        assert_eq!(
            string_array(Some(&json!(["a", 1])), "abilities", 10, 5, &mut errors),
            None
        );
        assert_eq!(
            string_array(Some(&json!("a")), "abilities", 10, 5, &mut errors),
            None
        );
        assert_eq!(
            serde_json::to_string(&errors).unwrap(),
            r#"{"abilities.1":["The abilities.1 field must be a string."],"abilities":["The abilities field must be an array."]}"#
        );
    }
}
