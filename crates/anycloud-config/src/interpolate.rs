//! `${VAR}` interpolation in the raw config text.
//!
//! Done on the text, before TOML parsing, so numbers and booleans can come
//! from the environment too. Substituted values are escaped for a TOML basic
//! string, because secrets may hold quotes or backslashes. `$${` is a literal
//! `${`. A missing variable is an error naming it (never its value).

use crate::Problem;

pub fn interpolate(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(raw.len());
    let mut problems = Vec::new();
    for (lineno, line) in raw.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                problems.push(Problem {
                    key: String::new(),
                    line: Some(lineno + 1),
                    message: "unterminated `${` (write `$${` for a literal)".into(),
                });
                out.push_str(&rest[pos..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problems.push(Problem {
                    key: String::new(),
                    line: Some(lineno + 1),
                    message: format!("`${{{name}}}` is not a valid environment variable name"),
                });
            } else {
                match env(name) {
                    Some(value) => out.push_str(&escape_basic(&value)),
                    None => problems.push(Problem {
                        key: String::new(),
                        line: Some(lineno + 1),
                        message: format!("environment variable `{name}` is not set"),
                    }),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn escape_basic(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s
}
