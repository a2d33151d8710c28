//! Field rules every generated body follows: an `Option` field that is `None` is left out of the
//! stored body instead of written as `null` (Ventyd's `optional()` schemas reject `null`), and
//! is read back as `None` from an absent field or from `null`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Field, FieldsNamed, GenericArgument, PathArguments, Type};

use crate::attr::scan_serde_attrs;

/// Serde keys after which ventyd leaves a field's serialization alone: the user decided.
const OWN_SERIALIZATION: &[&str] = &[
    "skip",
    "skip_serializing",
    "skip_serializing_if",
    "with",
    "serialize_with",
    "flatten",
];

/// Whether `ty` is written `Option<T>` (also `std::option::Option<T>`, `core::option::Option<T>`).
/// A type alias of an `Option` is not recognised: the macro sees tokens, not types.
pub fn is_option(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    if path.qself.is_some() {
        return false;
    }
    let segments: Vec<_> = path.path.segments.iter().collect();
    let Some(last) = segments.last() else {
        return false;
    };
    let prefix_ok = match segments.len() {
        1 => path.path.leading_colon.is_none(),
        3 => {
            (segments[0].ident == "std" || segments[0].ident == "core")
                && segments[1].ident == "option"
        }
        _ => false,
    };
    if !prefix_ok || last.ident != "Option" {
        return false;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) => {
            args.args.len() == 1 && matches!(args.args[0], GenericArgument::Type(_))
        }
        _ => false,
    }
}

/// The attribute ventyd adds to `field`, if any.
pub fn added_attrs(field: &Field) -> TokenStream {
    if !is_option(&field.ty) {
        return TokenStream::new();
    }
    let own = scan_serde_attrs(&field.attrs).keys.iter().any(|key| {
        key.attr == "serde"
            && key
                .path
                .get_ident()
                .is_some_and(|name| OWN_SERIALIZATION.iter().any(|own| name == own))
    });
    if own {
        return TokenStream::new();
    }
    quote!(#[serde(skip_serializing_if = "::core::option::Option::is_none")])
}

/// Named fields as written, each with the attributes ventyd adds; `vis` replaces each field's
/// visibility when given (for a generated struct), otherwise the field's own is kept.
pub fn named(fields: &FieldsNamed, vis: Option<&syn::Visibility>) -> TokenStream {
    let fields = fields.named.iter().map(|field| {
        let attrs = &field.attrs;
        let added = added_attrs(field);
        let ident = &field.ident;
        let ty = &field.ty;
        let vis = vis.unwrap_or(&field.vis);
        quote!(#(#attrs)* #added #vis #ident: #ty)
    });
    quote!({ #(#fields,)* })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_option_as_written() {
        for ty in [
            "Option<String>",
            "std::option::Option<u8>",
            "core::option::Option<Vec<u8>>",
            "Option<Option<u8>>",
        ] {
            assert!(is_option(&syn::parse_str(ty).unwrap()), "{ty}");
        }
        for ty in [
            "String",
            "Vec<Option<u8>>",
            "my::Option<u8>",
            "::Option<u8>",
            "Option",
            "<T as X>::Option<u8>",
        ] {
            assert!(!is_option(&syn::parse_str(ty).unwrap()), "{ty}");
        }
    }

    #[test]
    fn leaves_a_field_with_its_own_serialization_alone() {
        let plain: Field = syn::parse_quote!(pub note: Option<String>);
        assert!(!added_attrs(&plain).is_empty());
        for attr in [
            quote!(#[serde(skip_serializing_if = "Option::is_none")]),
            quote!(#[serde(with = "m")]),
            quote!(#[serde(serialize_with = "f")]),
            quote!(#[serde(skip)]),
        ] {
            let field: syn::FieldsNamed = syn::parse_quote!({ #attr note: Option<String> });
            let field = field.named.first().unwrap();
            assert!(added_attrs(field).is_empty(), "{attr}");
        }
        // `default` or a rename do not change serialization of `None`.
        let field: syn::FieldsNamed =
            syn::parse_quote!({ #[serde(default, rename = "n")] note: Option<String> });
        assert!(!added_attrs(field.named.first().unwrap()).is_empty());
    }
}
