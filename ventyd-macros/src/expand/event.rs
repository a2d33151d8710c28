//! `#[event]`: the enum with serde/schemars derives and one wire name per variant, the initial
//! event's body struct, `impl ventyd::Event` and `impl From<Initial>`.

use proc_macro2::{Literal, TokenStream};
use quote::quote;
use syn::{Attribute, Fields, Item};

use super::fields;
use crate::ast::{EventEnum, EventPlan, InitialBody, Shape};
use crate::attr::is_event_attr;
use crate::krate::Krate;
use crate::symbol::{COPIED_DERIVES, DOC, GENERATED_DERIVES};

/// The derives every event enum and initial body struct gets, through ventyd's own serde and
/// schemars so that a user depends on `ventyd` alone.
pub(crate) fn generated_derives(krate: &Krate) -> TokenStream {
    quote! {
        #[derive(
            #krate::__private::serde::Serialize,
            #krate::__private::serde::Deserialize,
            #krate::__private::schemars::JsonSchema,
        )]
    }
}

/// The `crate` paths for those derives.
pub(crate) fn crate_attrs(krate: &Krate) -> TokenStream {
    let serde = krate.private_str("serde");
    let schemars = krate.private_str("schemars");
    quote! {
        #[serde(crate = #serde)]
        #[schemars(crate = #schemars)]
    }
}

fn without_event_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|attr| !is_event_attr(attr))
}

pub fn expand(model: &EventEnum, plan: &EventPlan, krate: &Krate) -> TokenStream {
    let item = model.item;
    let vis = &item.vis;
    let ident = &item.ident;
    let enum_token = &item.enum_token;
    let attrs = without_event_attrs(&item.attrs);
    let derives = generated_derives(krate);
    let serde_crate = krate.private_str("serde");
    let schemars_crate = krate.private_str("schemars");

    // The wire name of each variant is its full event name, set here so that the name serde
    // writes and the name in `Event::NAMES` come from one place and cannot differ.
    let variants = model
        .variants
        .iter()
        .zip(&plan.names)
        .map(|(variant, name)| {
            let variant = variant.variant;
            let attrs = without_event_attrs(&variant.attrs);
            let ident = &variant.ident;
            let fields = match &variant.fields {
                Fields::Named(named) => fields::named(named, None),
                other => quote!(#other),
            };
            let discriminant = variant
                .discriminant
                .as_ref()
                .map(|(eq, expr)| quote!(#eq #expr));
            quote! {
                #[serde(rename = #name)]
                #(#attrs)*
                #ident #fields #discriminant
            }
        });

    let the_enum = quote! {
        #derives
        #[serde(
            crate = #serde_crate,
            tag = "eventName",
            content = "body",
        )]
        #[schemars(crate = #schemars_crate)]
        #(#attrs)*
        #vis #enum_token #ident {
            #(#variants,)*
        }
    };

    let initial_struct = initial_struct(model, plan, krate);
    let event_impl = event_impl(model, plan, krate);
    quote! {
        #the_enum
        #initial_struct
        const _: () = {
            #event_impl
        };
    }
}

/// The struct generated for a named-field initial variant, with the variant's fields.
fn initial_struct(model: &EventEnum, plan: &EventPlan, krate: &Krate) -> TokenStream {
    let InitialBody::Struct(struct_ident) = &plan.initial_body else {
        return TokenStream::new();
    };
    let Some(variant) = model.variants.get(plan.initial) else {
        return TokenStream::new();
    };
    let Shape::Named(fields) = variant.shape else {
        return TokenStream::new();
    };
    let item = model.item;
    let vis = &item.vis;
    let enum_ident = &item.ident;
    let variant_ident = &variant.variant.ident;
    let name = plan.names.get(plan.initial).map_or("", String::as_str);

    let doc = format!(
        " The body of `{name}`, the event that creates a `{entity}`: `Entity::create` takes it, and it converts into [`{enum_ident}::{variant_ident}`].",
        entity = plan.entity,
    );
    let variant_docs = variant
        .variant
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident(DOC));
    // The standard derives (Debug, Clone, PartialEq, ...) mean the same on the body as on the
    // enum; the serde ones are ours.
    let user_derives = model.derives.iter().filter(|path| {
        path.segments
            .last()
            .is_some_and(|last| COPIED_DERIVES.iter().any(|name| last.ident == name))
    });
    let user_derives: Vec<_> = user_derives.collect();
    let user_derives = (!user_derives.is_empty()).then(|| quote!(#[derive(#(#user_derives),*)]));
    // The variant's fields are renamed by its own `rename_all`, or by the enum's
    // `rename_all_fields`; the struct must name them the same way.
    let renames = if variant.serde.rename_all.is_empty() {
        &model.serde.rename_all_fields
    } else {
        &variant.serde.rename_all
    };
    let renames = renames
        .iter()
        .map(|(attr, value)| quote!(#[#attr(rename_all #value)]));
    let fields = fields::named(fields, Some(vis));
    let derives = generated_derives(krate);
    let crate_attrs = crate_attrs(krate);
    quote! {
        #[doc = #doc]
        #[doc = ""]
        #(#variant_docs)*
        #derives
        #crate_attrs
        #user_derives
        #(#renames)*
        #vis struct #struct_ident #fields
    }
}

fn event_impl(model: &EventEnum, plan: &EventPlan, krate: &Krate) -> TokenStream {
    let ident = &model.item.ident;
    let entity = &plan.entity;
    let separator = &plan.separator;
    let names = &plan.names;
    let initial_name = names.get(plan.initial).map_or("", String::as_str);
    let variants: Vec<_> = model.variants.iter().map(|v| &v.variant.ident).collect();
    let indexes: Vec<_> = (0..variants.len()).map(Literal::usize_unsuffixed).collect();

    let initial = model.variants.get(plan.initial);
    let (initial_ty, from_impl) = match (&plan.initial_body, initial) {
        (InitialBody::Newtype(ty), Some(variant)) => {
            let variant = &variant.variant.ident;
            let from = quote! {
                #[automatically_derived]
                impl ::core::convert::From<#ty> for #ident {
                    #[inline]
                    fn from(body: #ty) -> Self {
                        Self::#variant(body)
                    }
                }
            };
            (quote!(#ty), from)
        }
        (InitialBody::Struct(body), Some(variant)) => {
            let fields = match &variant.variant.fields {
                Fields::Named(fields) => fields
                    .named
                    .iter()
                    .filter_map(|f| f.ident.as_ref())
                    .collect(),
                _ => Vec::new(),
            };
            let variant = &variant.variant.ident;
            let from = quote! {
                #[automatically_derived]
                impl ::core::convert::From<#body> for #ident {
                    #[inline]
                    fn from(body: #body) -> Self {
                        Self::#variant { #(#fields: body.#fields,)* }
                    }
                }
            };
            (quote!(#body), from)
        }
        (_, None) => (quote!(Self), TokenStream::new()),
    };

    quote! {
        #[automatically_derived]
        impl #krate::__private::EventSealed for #ident {}

        #[automatically_derived]
        impl #krate::Event for #ident {
            type Initial = #initial_ty;
            const ENTITY_NAME: &'static str = #entity;
            const SEPARATOR: &'static str = #separator;
            const NAMES: &'static [&'static str] = &[#(#names),*];
            const INITIAL_NAME: &'static str = #initial_name;

            fn event_name(&self) -> &'static str {
                match self {
                    #(Self::#variants { .. } => #names,)*
                }
            }

            fn variant_index(&self) -> usize {
                match self {
                    #(Self::#variants { .. } => #indexes,)*
                }
            }

            fn name_index(name: &str) -> ::core::option::Option<usize> {
                match name {
                    #(#names => ::core::option::Option::Some(#indexes),)*
                    _ => ::core::option::Option::None,
                }
            }

            fn schemas() -> &'static #krate::EventSchemas {
                static SCHEMAS: #krate::__private::OnceLock<#krate::EventSchemas> =
                    #krate::__private::OnceLock::new();
                SCHEMAS.get_or_init(#krate::EventSchemas::build::<Self>)
            }
        }

        #from_impl
    }
}

/// What `#[event]` emits next to its errors when the enum cannot be expanded: the item without
/// the `#[event]` helper attributes, and for an enum the serde and schemars derives the user did
/// not write, so that `#[serde]`/`#[schemars]` field attributes still resolve and the errors
/// stay the ones reported.
pub fn fallback(item: &Item, model: Option<&EventEnum>, krate: &Krate) -> TokenStream {
    let Some(model) = model else {
        return quote!(#item);
    };
    let mut item = model.item.clone();
    item.attrs.retain(|attr| !is_event_attr(attr));
    for variant in &mut item.variants {
        variant.attrs.retain(|attr| !is_event_attr(attr));
    }
    let missing: Vec<TokenStream> = GENERATED_DERIVES
        .iter()
        .filter(|name| {
            !model
                .derives
                .iter()
                .any(|path| path.segments.last().is_some_and(|last| last.ident == name))
        })
        .map(|name| match *name {
            "JsonSchema" => quote!(#krate::__private::schemars::JsonSchema),
            "Serialize" => quote!(#krate::__private::serde::Serialize),
            _ => quote!(#krate::__private::serde::Deserialize),
        })
        .collect();
    if missing.is_empty() {
        return quote!(#item);
    }
    let crate_attrs = crate_attrs(krate);
    quote! {
        #[derive(#(#missing),*)]
        #crate_attrs
        #item
    }
}
