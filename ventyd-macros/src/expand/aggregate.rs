//! `#[derive(Aggregate)]`: `impl ventyd::Aggregate` naming the event type.

use proc_macro2::TokenStream;
use quote::quote;

use crate::ast::AggregateInput;

/// The impl, or nothing when no event type was given (there is then nothing to name).
///
/// The event type keeps the spans the user wrote, so that a type that is not an `#[event]` enum
/// is reported on that path by `ventyd::Event`'s `on_unimplemented` message.
pub fn expand(model: &AggregateInput) -> TokenStream {
    let krate = &model.krate;
    let Some(event) = &model.event else {
        return TokenStream::new();
    };
    let input = model.input;
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::Aggregate for #ident #ty_generics #where_clause {
                type Event = #event;
            }
        };
    }
}
