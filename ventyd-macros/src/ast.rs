//! The models the macros work on: what the user wrote, read into small structs (`EventEnum`,
//! `AggregateInput`, `MutationsImpl`), and what the checks resolve from them (`EventPlan`,
//! `MutationsPlan`), which is all that expansion needs.

use proc_macro2::TokenStream;
use syn::{
    Attribute, DeriveInput, Fields, FieldsNamed, Ident, ImplItem, ImplItemFn, Item, ItemEnum,
    ItemImpl, Meta, Path, Type, Variant, Visibility,
};

use crate::attr::{self, EventArgs, SerdeAttrs, VariantArgs};
use crate::ctxt::Ctxt;

// ---------------------------------------------------------------------------------------------
// #[event]

/// An enum under `#[event(...)]`.
pub struct EventEnum<'a> {
    pub item: &'a ItemEnum,
    pub args: EventArgs,
    pub variants: Vec<EventVariant<'a>>,
    /// The paths of the enum's own `#[derive(...)]`s.
    pub derives: Vec<Path>,
    pub serde: SerdeAttrs,
}

/// One variant of an event enum.
pub struct EventVariant<'a> {
    pub variant: &'a Variant,
    pub args: VariantArgs,
    pub serde: SerdeAttrs,
    pub shape: Shape<'a>,
}

/// The shape of a variant's body.
pub enum Shape<'a> {
    /// `Created { email: String }` (also `Created {}`).
    Named(&'a FieldsNamed),
    /// `Tagged(TagBody)`.
    Newtype(&'a Type),
    /// `Deleted`: no body, rejected.
    Unit,
    /// `Moved(i32, i32)` or `Moved()`: rejected.
    Tuple,
}

/// Finds the enum that `#[event]` is on; anything else is an error on its keyword.
pub fn event_item<'a>(cx: &Ctxt, item: &'a Item) -> Option<&'a ItemEnum> {
    let keyword: &dyn quote::ToTokens = match item {
        Item::Enum(item) => return Some(item),
        Item::Struct(item) => &item.struct_token,
        Item::Union(item) => &item.union_token,
        Item::Fn(item) => &item.sig.fn_token,
        Item::Impl(item) => &item.impl_token,
        Item::Trait(item) => &item.trait_token,
        Item::Type(item) => &item.type_token,
        _ => {
            cx.error_at(
                proc_macro2::Span::call_site(),
                "#[event] must be on an enum with one variant per event",
            );
            return None;
        }
    };
    cx.error_spanned_by(
        keyword,
        "#[event] must be on an enum with one variant per event: `enum UserEvent { ... }`",
    );
    None
}

impl<'a> EventEnum<'a> {
    /// Reads the enum and its attributes; bad keys are recorded in `cx`.
    pub fn from_item(cx: &Ctxt, args: TokenStream, item: &'a ItemEnum) -> Self {
        let mut event_args = EventArgs::default();
        attr::parse_event_args(cx, &mut event_args, args);
        for attr in item.attrs.iter().filter(|attr| attr::is_event_attr(attr)) {
            attr::parse_enum_event_attr(cx, &mut event_args, attr);
        }
        let variants = item
            .variants
            .iter()
            .map(|variant| EventVariant {
                variant,
                args: attr::parse_variant_args(cx, &variant.attrs),
                serde: attr::scan_serde_attrs(&variant.attrs),
                shape: match &variant.fields {
                    Fields::Named(fields) => Shape::Named(fields),
                    Fields::Unnamed(fields) => match fields.unnamed.first() {
                        Some(field) if fields.unnamed.len() == 1 => Shape::Newtype(&field.ty),
                        _ => Shape::Tuple,
                    },
                    Fields::Unit => Shape::Unit,
                },
            })
            .collect();
        EventEnum {
            item,
            args: event_args,
            variants,
            derives: attr::derive_paths(&item.attrs),
            serde: attr::scan_serde_attrs(&item.attrs),
        }
    }
}

/// What the checks resolved for an event enum that can be expanded.
pub struct EventPlan {
    pub entity: String,
    pub separator: String,
    /// The full name of each variant, in variant order, all different.
    pub names: Vec<String>,
    /// The index of the initial variant.
    pub initial: usize,
    pub initial_body: InitialBody,
}

/// The type of the initial event's body, `<E as Event>::Initial`.
pub enum InitialBody {
    /// The newtype variant's own type.
    Newtype(Box<Type>),
    /// A struct generated from the variant's fields, with this name.
    Struct(Ident),
}

// ---------------------------------------------------------------------------------------------
// #[derive(Aggregate)]

/// A type under `#[derive(Aggregate)]`.
pub struct AggregateInput<'a> {
    pub input: &'a DeriveInput,
    /// `#[aggregate(event = ...)]`.
    pub event: Option<Type>,
    /// `#[aggregate(crate = "...")]`, or `::ventyd`.
    pub krate: crate::krate::Krate,
    /// Whether an `#[aggregate(...)]` could not be read to its end (already reported).
    pub malformed: bool,
}

impl<'a> AggregateInput<'a> {
    pub fn from_input(cx: &Ctxt, input: &'a DeriveInput) -> Self {
        let (event, krate, malformed) = attr::parse_aggregate_attrs(cx, &input.attrs);
        AggregateInput {
            input,
            event,
            krate: crate::krate::Krate::from_lit(cx, krate.as_ref()),
            malformed,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// #[mutations] and #[mutation]

/// An impl block under `#[mutations]`.
pub struct MutationsImpl<'a> {
    pub item: &'a ItemImpl,
    /// The methods marked `#[mutation]`, in order.
    pub methods: Vec<&'a ImplItemFn>,
}

impl<'a> MutationsImpl<'a> {
    /// Finds the `#[mutation]` methods. A `#[mutation]` with arguments, a repeated one, or one on
    /// something other than a method is an error here.
    pub fn from_item(cx: &Ctxt, item: &'a ItemImpl) -> Self {
        let mut methods = Vec::new();
        for impl_item in &item.items {
            let attrs = impl_item_attrs(impl_item);
            let marks: Vec<&Attribute> = attrs
                .iter()
                .filter(|attr| attr::is_mutation_attr(attr))
                .collect();
            let Some(first) = marks.first() else {
                continue;
            };
            for mark in &marks {
                match &mark.meta {
                    Meta::Path(_) => {}
                    Meta::List(list) => cx.error_spanned_by(
                        &list.tokens,
                        "#[mutation] takes no arguments: write #[mutation]",
                    ),
                    Meta::NameValue(name_value) => cx.error_spanned_by(
                        &name_value.value,
                        "#[mutation] takes no arguments: write #[mutation]",
                    ),
                }
            }
            for repeated in marks.iter().skip(1) {
                cx.error_spanned_by(repeated, "duplicate #[mutation]");
            }
            match impl_item {
                ImplItem::Fn(func) => methods.push(func),
                _ => cx.error_spanned_by(first, "#[mutation] must be on a method"),
            }
        }
        MutationsImpl { item, methods }
    }
}

/// The attributes of an item in an impl block.
pub fn impl_item_attrs(item: &ImplItem) -> &[Attribute] {
    match item {
        ImplItem::Const(item) => &item.attrs,
        ImplItem::Fn(item) => &item.attrs,
        ImplItem::Type(item) => &item.attrs,
        ImplItem::Macro(item) => &item.attrs,
        _ => &[],
    }
}

/// What the checks resolved for a `#[mutations]` impl.
pub struct MutationsPlan<'a> {
    /// `UserMutations`.
    pub trait_ident: Ident,
    /// The visibility of the first mutation.
    pub vis: &'a Visibility,
    /// The last identifier of the self type, for docs.
    pub self_name: String,
    pub methods: Vec<MutationPlan<'a>>,
}

/// One mutation method.
pub struct MutationPlan<'a> {
    pub func: &'a ImplItemFn,
    /// The arguments of the entity method: the method's arguments after the receiver or the
    /// dispatcher, with patterns that are not plain identifiers renamed `__argN`.
    pub args: Vec<(Ident, &'a Type)>,
    pub form: MutationForm<'a>,
}

/// How a mutation produces its events.
pub enum MutationForm<'a> {
    /// `fn m(&self, ...) -> Result<R, E>` or `-> R`: decide from the state, return the events.
    Decide(DecideOutput<'a>),
    /// `fn m(dispatch: &mut Dispatch<Self>, ...) -> Result<T, E>`: dispatch the events.
    Dispatch { output: &'a Type },
}

/// The return type of a deciding mutation.
pub enum DecideOutput<'a> {
    /// `Result<R, E>`: the entity method returns `Result<(), ventyd::MutationError<E>>`.
    Result { events: &'a Type, error: &'a Type },
    /// Any other `R`: the entity method returns `Result<(), ventyd::Error>`.
    Events(&'a Type),
}
