//! Case conversion of variant names into event names.

/// Converts a Rust type-style identifier into `snake_case`, the form event names take:
/// `NameUpdated` -> `name_updated`, `HTTPCallMade` -> `http_call_made`, `V2Created` ->
/// `v2_created`.
///
/// Words start at a lowercase-or-digit to uppercase change, and at the last capital of an
/// acronym that is followed by a lowercase letter (`HTTPCall` -> `http`, `call`), as heck does;
/// digits stay in the word they follow. A raw identifier's `r#` is dropped.
pub fn snake_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            push_separator(&mut out);
            continue;
        }
        if c.is_uppercase() {
            let prev = i.checked_sub(1).and_then(|j| chars.get(j));
            let next = chars.get(i + 1);
            let starts_word = match prev {
                Some(p) if p.is_lowercase() || p.is_numeric() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if starts_word {
                push_separator(&mut out);
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Pushes one `_` between words: never at the start, never two in a row.
fn push_separator(out: &mut String) {
    if !out.is_empty() && !out.ends_with('_') {
        out.push('_');
    }
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_camel_case_words() {
        assert_eq!(snake_case("Created"), "created");
        assert_eq!(snake_case("NameUpdated"), "name_updated");
        assert_eq!(snake_case("EmailAddressVerified"), "email_address_verified");
    }

    #[test]
    fn splits_acronyms_before_the_next_word() {
        assert_eq!(snake_case("HTTPCallMade"), "http_call_made");
        assert_eq!(snake_case("UserIDSet"), "user_id_set");
        assert_eq!(snake_case("SentSMS"), "sent_sms");
        assert_eq!(snake_case("ABC"), "abc");
    }

    #[test]
    fn keeps_digits_in_their_word() {
        assert_eq!(snake_case("V2Created"), "v2_created");
        assert_eq!(snake_case("Sha256Hashed"), "sha256_hashed");
        assert_eq!(snake_case("Created2"), "created2");
    }

    #[test]
    fn normalizes_underscores_and_raw_identifiers() {
        assert_eq!(snake_case("Already_Snake"), "already_snake");
        assert_eq!(snake_case("_Leading"), "leading");
        assert_eq!(snake_case("Trailing_"), "trailing");
        assert_eq!(snake_case("Double__Under"), "double_under");
        assert_eq!(snake_case("r#Type"), "type");
        assert_eq!(snake_case("lower"), "lower");
    }
}
