//! `#[body]`: a type nested inside an event body (a struct or an enum), given the serde and
//! schemars derives through ventyd's own copies, and the field rules of event bodies.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Fields, Item};

use super::event::{crate_attrs, generated_derives};
use super::fields;
use crate::attr::derive_paths;
use crate::ctxt::Ctxt;
use crate::krate::Krate;
use crate::symbol::GENERATED_DERIVES;

/// Expands `#[body]` on `item`; errors go to `cx`, and the item is emitted as written next to
/// them.
pub fn expand(cx: &Ctxt, item: &Item, krate: &Krate) -> TokenStream {
    let attrs = match item {
        Item::Struct(item) => &item.attrs,
        Item::Enum(item) => &item.attrs,
        other => {
            // On the item's keyword (`fn`, `union`, ...) where there is one.
            let keyword: Option<&dyn quote::ToTokens> = match other {
                Item::Fn(item) => Some(&item.sig.fn_token),
                Item::Union(item) => Some(&item.union_token),
                Item::Impl(item) => Some(&item.impl_token),
                Item::Trait(item) => Some(&item.trait_token),
                Item::Type(item) => Some(&item.type_token),
                _ => None,
            };
            let message = "#[body] is for a struct or an enum used inside an event body";
            match keyword {
                Some(keyword) => cx.error_spanned_by(keyword, message),
                None => cx.error_at(proc_macro2::Span::call_site(), message),
            }
            return quote!(#item);
        }
    };
    for path in derive_paths(attrs) {
        if let Some(last) = path.segments.last()
            && GENERATED_DERIVES.iter().any(|name| last.ident == name)
        {
            cx.error_spanned_by(
                &path,
                format!(
                    "#[body] derives `{}` itself, with ventyd's serde and schemars: remove it from #[derive(...)]",
                    last.ident
                ),
            );
        }
    }
    if cx.has_errors() {
        return quote!(#item);
    }
    let derives = generated_derives(krate);
    let crate_attrs = crate_attrs(krate);
    let item = with_field_rules(item);
    quote! {
        #derives
        #crate_attrs
        #item
    }
}

/// `item` with the attributes [`fields::added_attrs`] gives each named field.
fn with_field_rules(item: &Item) -> Item {
    let mut item = item.clone();
    let add = |fields: &mut Fields| {
        if let Fields::Named(named) = fields {
            for field in &mut named.named {
                let added = fields::added_attrs(field);
                if !added.is_empty() {
                    field.attrs.push(syn::parse_quote!(#added));
                }
            }
        }
    };
    match &mut item {
        Item::Struct(s) => add(&mut s.fields),
        Item::Enum(e) => e.variants.iter_mut().for_each(|v| add(&mut v.fields)),
        _ => {}
    }
    item
}
