//! Procedural macros of [ventyd](https://docs.rs/ventyd), an event-sourcing library: `#[event]`,
//! `#[derive(Aggregate)]`, `#[mutations]` and `#[mutation]`.
//!
//! Use them through the `ventyd` crate, which re-exports and documents them; the code they
//! generate names only `::ventyd::...` (or the path given with `crate = "..."`) and
//! `::core::...`, so `ventyd` is the one dependency a user needs.
//!
//! Each entry point reads its input into a model (`ast`, `attr`), checks it (`check`), and
//! expands it (`expand`). Errors are collected (`ctxt`) so one compile shows them all; next to
//! errors, an attribute macro emits the item it was given (or as much of its expansion as is
//! sound), so that one mistake does not cascade into errors elsewhere.

#![deny(missing_docs)]

mod ast;
mod attr;
mod case;
mod check;
mod ctxt;
mod expand;
mod krate;
mod symbol;

use proc_macro::TokenStream;
use quote::quote;
use syn::{DeriveInput, Item};

use crate::ctxt::Ctxt;

/// Makes an enum the event type of an entity: `#[event(entity = "user")]`.
///
/// One variant per event, named `entity:snake_case_variant` (or `#[event(rename = "...")]`), one
/// of them `#[event(initial)]`. Generates the serde/schemars derives with the wire format
/// `{"eventName": ..., "body": ...}`, `impl ventyd::Event`, and the initial event's body type.
/// See `ventyd::event` for the full documentation.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<Item>(input.clone()) {
        Ok(item) => item,
        Err(error) => return with_error(error, input),
    };
    let cx = Ctxt::new();
    let model =
        ast::event_item(&cx, &item).map(|item| ast::EventEnum::from_item(&cx, args.into(), item));
    let plan = model.as_ref().and_then(|model| check::event(&cx, model));
    let krate = krate::Krate::from_lit(
        &cx,
        model.as_ref().and_then(|model| model.args.krate.as_ref()),
    );
    let expanded = match (&model, &plan) {
        (Some(model), Some(plan)) => expand::event::expand(model, plan, &krate),
        _ => expand::event::fallback(&item, model.as_ref(), &krate),
    };
    match cx.check() {
        Ok(()) => expanded.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #expanded).into()
        }
    }
}

/// Makes a struct or an enum usable inside an event body with `ventyd` as the only dependency:
/// `#[ventyd::body]`. Derives serde's `Serialize`/`Deserialize` and schemars' `JsonSchema`
/// through ventyd's copies, and gives its fields the rules of event bodies (`None` left out).
/// See `ventyd::body` for the full documentation.
#[proc_macro_attribute]
pub fn body(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<Item>(input.clone()) {
        Ok(item) => item,
        Err(error) => return with_error(error, input),
    };
    let cx = Ctxt::new();
    let krate = attr::parse_crate_arg(&cx, args.into(), "#[body]");
    let krate = krate::Krate::from_lit(&cx, krate.as_ref());
    let expanded = expand::body::expand(&cx, &item, &krate);
    with_errors(cx, expanded)
}

/// Implements `ventyd::Aggregate` for the state type: `#[aggregate(event = UserEvent)]` names
/// its event enum. See `ventyd::Aggregate` for the full documentation.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = match syn::parse::<DeriveInput>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error().into(),
    };
    let cx = Ctxt::new();
    let model = ast::AggregateInput::from_input(&cx, &input);
    check::aggregate(&cx, &model);
    // The impl is emitted whenever the event type is known, even next to errors, so that code
    // using the aggregate does not fail too.
    let expanded = expand::aggregate::expand(&model);
    match cx.check() {
        Ok(()) => expanded.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #expanded).into()
        }
    }
}

/// Turns the `#[mutation]` methods of an aggregate's impl block into methods of
/// `ventyd::Entity<Aggregate>`, through a generated `{Aggregate}Mutations` trait. See
/// `ventyd::mutations` for the full documentation.
#[proc_macro_attribute]
pub fn mutations(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<Item>(input.clone()) {
        Ok(item) => item,
        Err(error) => return with_error(error, input),
    };
    let cx = Ctxt::new();
    let krate = attr::parse_crate_arg(&cx, args.into(), "#[mutations]");
    let krate = krate::Krate::from_lit(&cx, krate.as_ref());
    let Item::Impl(item) = &item else {
        cx.error_at(
            proc_macro2::Span::call_site(),
            "#[mutations] must be on the impl block of an aggregate: `impl User { ... }`",
        );
        return with_errors(cx, quote!(#item));
    };
    let model = ast::MutationsImpl::from_item(&cx, item);
    let plan = check::mutations(&cx, &model);
    match (plan, cx.has_errors()) {
        (Some(plan), false) => expand::mutation::expand(item, &plan, &krate).into(),
        _ => {
            let stripped = expand::mutation::strip_marks(item);
            with_errors(cx, quote!(#stripped))
        }
    }
}

/// Marks a method of a `#[mutations]` impl block as a mutation. On its own (outside such a
/// block) it is an error. See `ventyd::mutations` for the full documentation.
#[proc_macro_attribute]
pub fn mutation(_args: TokenStream, input: TokenStream) -> TokenStream {
    // Inside a `#[mutations]` impl, the outer macro runs first and removes this attribute, so
    // reaching this point means there is no such impl around the method.
    let error = syn::Error::new(
        proc_macro2::Span::call_site(),
        "#[mutation] must be on a method inside a `#[mutations] impl` block of an aggregate",
    );
    with_error(error, input)
}

/// The error next to the item as it was given.
fn with_error(error: syn::Error, input: TokenStream) -> TokenStream {
    let error = error.into_compile_error();
    let input = proc_macro2::TokenStream::from(input);
    quote!(#error #input).into()
}

/// The collected errors next to `item`.
fn with_errors(cx: Ctxt, item: proc_macro2::TokenStream) -> TokenStream {
    match cx.check() {
        Ok(()) => item.into(),
        Err(error) => {
            let error = error.into_compile_error();
            quote!(#error #item).into()
        }
    }
}
