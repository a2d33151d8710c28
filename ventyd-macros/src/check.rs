//! Checks across attributes and items, each error spanned on the token to fix. A check also
//! resolves what expansion needs (a plan), so that expansion itself cannot fail.

use std::collections::HashMap;

use proc_macro2::Span;
use quote::{ToTokens, format_ident};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ImplItemFn, Pat, PathArguments, ReceiverKind, ReturnType, Type,
};

use crate::ast::{
    AggregateInput, DecideOutput, EventEnum, EventPlan, InitialBody, MutationForm, MutationPlan,
    MutationsImpl, MutationsPlan, Shape,
};
use crate::case::snake_case;
use crate::ctxt::Ctxt;
use crate::symbol::{DEFAULT_SEPARATOR, GENERATED_DERIVES};

// ---------------------------------------------------------------------------------------------
// Names

/// Whether `name` can be an entity or event name: not empty, no whitespace, no control
/// characters. Anything else Ventyd accepts is accepted (`.`, `/`, `*`, letters of any script):
/// what a message broker needs from names is its adapter's job, not a limit on names. A name
/// must not contain the separator either; [`event_names`] checks that.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| !(c.is_whitespace() || c.is_control()))
}

/// Whether `separator` can separate the entity name from the event name: not empty, and no
/// control characters. Ventyd's `namespaceSeparator` is any string; `:`, `/`, `.`, `::` and
/// the rest all work.
pub fn is_valid_separator(separator: &str) -> bool {
    !separator.is_empty() && !separator.chars().any(char::is_control)
}

const NAME_RULE: &str = "a name is not empty and has no whitespace or control characters";

// ---------------------------------------------------------------------------------------------
// #[event]

/// Checks an event enum. Returns a plan when the enum can be expanded, which is also the case
/// after some errors (bad names, a missing `#[event(initial)]`): the expansion is then emitted
/// next to the errors so that code using the enum does not fail with more, unrelated errors.
pub fn event(cx: &Ctxt, model: &EventEnum) -> Option<EventPlan> {
    let item = model.item;
    let mut expandable = true;

    let generics = &item.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "event enums cannot be generic: each event name stands for one body type",
        );
        expandable = false;
    }

    let entity = match &model.args.entity {
        Some(lit) => {
            let entity = lit.value();
            if entity.is_empty() {
                cx.error_spanned_by(lit, r#"the entity name is empty: write `entity = "user"`"#);
            } else if !is_valid_name(&entity) {
                cx.error_spanned_by(lit, format!("invalid entity name {entity:?}: {NAME_RULE}"));
            }
            entity
        }
        None => {
            if !model.args.malformed {
                cx.error_at(Span::call_site(), r#"expected #[event(entity = "...")]"#);
            }
            snake_case(&base_name(&item.ident))
        }
    };

    let separator = match &model.args.separator {
        Some(lit) => {
            let separator = lit.value();
            if !is_valid_separator(&separator) {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "invalid separator {separator:?}: it must be non-empty, with no control characters; write `separator = \":\"`, `\"/\"` or `\".\"`"
                    ),
                );
                // The names in later messages read better with the default.
                DEFAULT_SEPARATOR.to_owned()
            } else {
                separator
            }
        }
        None => DEFAULT_SEPARATOR.to_owned(),
    };
    if let Some(lit) = &model.args.entity
        && is_valid_name(&entity)
        && entity.contains(separator.as_str())
    {
        cx.error_spanned_by(
            lit,
            format!(
                "the entity name {entity:?} contains the separator {separator:?}, so where the event name starts could not be told: rename it or choose another separator"
            ),
        );
    }

    for variant in &model.variants {
        let ident = &variant.variant.ident;
        // The name table, the name lookup and the schemas are generated for every variant
        // written; a variant compiled out by `cfg` would leave them naming an event that does
        // not exist, and stores written by one build unreadable by another.
        for attr in &variant.variant.attrs {
            if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                cx.error_spanned_by(
                    attr,
                    format!(
                        "an event variant cannot be conditional: every build must know every event it may read back; remove this attribute from `{ident}`"
                    ),
                );
                expandable = false;
            }
        }
        match variant.shape {
            Shape::Named(_) | Shape::Newtype(_) => {}
            Shape::Unit => {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "an event needs a body, and unit variant `{ident}` has none: write `{ident} {{}}` or `{ident}(Body)`"
                    ),
                );
                expandable = false;
            }
            Shape::Tuple => {
                cx.error_spanned_by(
                    ident,
                    format!(
                        "an event body is a set of named fields or one type: write `{ident} {{ ... }}` or `{ident}(Body)`"
                    ),
                );
                expandable = false;
            }
        }
    }

    let names = event_names(cx, model, &entity, &separator);
    let initial = initial_variant(cx, model);
    check_bodies(cx, model, initial);

    for path in &model.derives {
        if let Some(last) = path.segments.last()
            && GENERATED_DERIVES.iter().any(|name| last.ident == name)
        {
            cx.error_spanned_by(
                path,
                format!(
                    "#[event] derives `{}` itself, with ventyd's serde and schemars: remove it from #[derive(...)]",
                    last.ident
                ),
            );
            expandable = false;
        }
    }

    expandable &= serde_attrs(cx, model);

    if !expandable {
        return None;
    }
    let initial = initial?;
    let initial_variant = model.variants.get(initial)?;
    let initial_body = match initial_variant.shape {
        Shape::Newtype(ty) => InitialBody::Newtype(Box::new(ty.clone())),
        _ => InitialBody::Struct(match &initial_variant.args.body {
            Some((_, ident)) => ident.clone(),
            None => initial_struct_name(&item.ident, &initial_variant.variant.ident),
        }),
    };
    Some(EventPlan {
        entity,
        separator,
        names,
        initial,
        initial_body,
    })
}

/// The enum name with a trailing `Event` removed: `UserEvent` -> `User`.
fn base_name(ident: &Ident) -> String {
    let name = ident.unraw().to_string();
    match name.strip_suffix("Event") {
        Some(base) if !base.is_empty() => base.to_owned(),
        _ => name,
    }
}

/// The name of the struct generated for a named-field initial variant:
/// `UserEvent::Created` -> `UserCreated`, `Account::Opened` -> `AccountOpened`.
pub fn initial_struct_name(enum_ident: &Ident, variant: &Ident) -> Ident {
    format_ident!(
        "{}{}",
        base_name(enum_ident),
        variant.unraw(),
        span = variant.span()
    )
}

/// Resolves the full name of every variant and reports invalid and duplicate names. The names
/// returned are all different: a duplicate gets a suffix that no valid name has, since it is
/// only expanded next to the error.
fn event_names(cx: &Ctxt, model: &EventEnum, entity: &str, separator: &str) -> Vec<String> {
    let mut seen: HashMap<String, &Ident> = HashMap::new();
    let mut names = Vec::with_capacity(model.variants.len());
    for (index, variant) in model.variants.iter().enumerate() {
        let ident = &variant.variant.ident;
        let local = match &variant.args.rename {
            Some(lit) => {
                let local = lit.value();
                if !is_valid_name(&local) {
                    cx.error_spanned_by(lit, format!("invalid event name {local:?}: {NAME_RULE}"));
                } else if local.contains(separator) {
                    cx.error_spanned_by(
                        lit,
                        format!(
                            "the event name {local:?} contains the separator {separator:?}, so where it starts could not be told: rename it or choose another separator"
                        ),
                    );
                }
                local
            }
            None => {
                let local = snake_case(&ident.to_string());
                if !is_valid_name(&local) || local.contains(separator) {
                    cx.error_spanned_by(
                        ident,
                        format!(
                            "variant `{ident}` gives the event name {local:?}, which is empty or holds whitespace, a control character or the separator {separator:?}: set one with #[event(rename = \"...\")]"
                        ),
                    );
                }
                local
            }
        };
        let full = format!("{entity}{separator}{local}");
        match seen.get(&full) {
            Some(first) => {
                let message =
                    format!("duplicate event name {full:?}: variant `{first}` already has it");
                match &variant.args.rename {
                    Some(lit) => cx.error_spanned_by(lit, message),
                    None => cx.error_spanned_by(ident, message),
                }
                names.push(format!("{full}#{index}"));
            }
            None => {
                seen.insert(full.clone(), ident);
                names.push(full);
            }
        }
    }
    names
}

/// Finds the one variant marked `#[event(initial)]`. With none marked, the first variant stands
/// in for it (after an error), so the rest of the enum can still be expanded.
fn initial_variant(cx: &Ctxt, model: &EventEnum) -> Option<usize> {
    let mut initial: Option<usize> = None;
    for (index, variant) in model.variants.iter().enumerate() {
        let Some(key) = &variant.args.initial else {
            continue;
        };
        match initial.and_then(|first| model.variants.get(first)) {
            Some(first) => cx.error_spanned_by(
                key,
                format!(
                    "only one variant can be #[event(initial)], and `{}` already is",
                    first.variant.ident
                ),
            ),
            None => initial = Some(index),
        }
    }
    if initial.is_none() {
        cx.error_spanned_by(
            &model.item.ident,
            "expected one variant marked #[event(initial)]: the event that creates an entity",
        );
        if !model.variants.is_empty() {
            initial = Some(0);
        }
    }
    initial
}

/// `body = Name` names the struct generated for a named-field initial variant, so it is wrong
/// anywhere else.
fn check_bodies(cx: &Ctxt, model: &EventEnum, initial: Option<usize>) {
    for (index, variant) in model.variants.iter().enumerate() {
        let Some((key, _)) = &variant.args.body else {
            continue;
        };
        if variant.args.initial.is_none() || initial != Some(index) {
            cx.error_spanned_by(
                key,
                "`body = ...` names the struct generated for the initial event: it goes with #[event(initial)]",
            );
        } else if let Shape::Newtype(ty) = variant.shape {
            cx.error_spanned_by(
                key,
                format!(
                    "`body = ...` names a generated struct, but this variant's body is already `{}`: remove `body = ...`",
                    ty.to_token_stream().to_string().replace(' ', "")
                ),
            );
        }
    }
}

/// Serde and schemars keys that would change the wire format `#[event]` sets. Returns whether the
/// enum can still be expanded.
fn serde_attrs(cx: &Ctxt, model: &EventEnum) -> bool {
    let mut expandable = true;
    for key in &model.serde.keys {
        let Some(name) = key.path.get_ident().map(Ident::to_string) else {
            continue;
        };
        let attr = &key.attr;
        let message = match name.as_str() {
            "tag" | "content" | "untagged" | "crate" => format!(
                "#[event] sets the wire format (`tag`, `content`) and the `crate` itself: remove `{name}` from #[{attr}(...)]"
            ),
            "rename_all" => format!(
                "`rename_all` would change the event names: remove it from #[{attr}(...)] and use #[event(rename = \"...\")] on a variant, or `rename_all_fields` for field names"
            ),
            _ => continue,
        };
        cx.error_spanned_by(&key.path, message);
        expandable = false;
    }
    for variant in &model.variants {
        for key in &variant.serde.keys {
            let Some(name) = key.path.get_ident().map(Ident::to_string) else {
                continue;
            };
            let attr = &key.attr;
            let message = match name.as_str() {
                "rename" | "alias" => format!(
                    "remove `{name}` from #[{attr}(...)] and use #[event(rename = \"...\")], so the stored name and the declared name cannot differ"
                ),
                "untagged" | "skip" | "skip_serializing" | "skip_deserializing" | "other" => {
                    format!(
                        "every variant of an event enum is an event stored under its name: remove `{name}` from #[{attr}(...)]"
                    )
                }
                _ => continue,
            };
            cx.error_spanned_by(&key.path, message);
            expandable = false;
        }
    }
    expandable
}

// ---------------------------------------------------------------------------------------------
// #[derive(Aggregate)]

/// Checks a `#[derive(Aggregate)]` input: it must name its event type and cannot be a union.
pub fn aggregate(cx: &Ctxt, model: &AggregateInput) {
    let input = model.input;
    if model.event.is_none() && !model.malformed {
        cx.error_spanned_by(&input.ident, "expected #[aggregate(event = ...)]");
    }
    if let syn::Data::Union(data) = &input.data {
        cx.error_spanned_by(
            data.union_token,
            "#[derive(Aggregate)] is for a struct or an enum holding the state, not a union",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// #[mutations]

/// Checks a `#[mutations]` impl and resolves the form of each mutation.
pub fn mutations<'a>(cx: &Ctxt, model: &MutationsImpl<'a>) -> Option<MutationsPlan<'a>> {
    let item = model.item;
    if let Some((path, for_token)) = &item.trait_ {
        cx.error_spanned_by(
            quote::quote!(#path #for_token),
            "#[mutations] must be on an inherent impl of an aggregate, `impl User { ... }`, not on an impl of a trait",
        );
    }

    let self_ident = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.clone())
        }
        _ => None,
    };
    if self_ident.is_none() {
        cx.error_spanned_by(
            &item.self_ty,
            "#[mutations] must be on the impl of an aggregate named by a path: `impl User { ... }`",
        );
    }

    if model.methods.is_empty() {
        cx.error_spanned_by(
            &item.self_ty,
            "no #[mutation] methods in this impl: mark the methods that change the entity with #[mutation], or remove #[mutations]",
        );
    }

    let methods: Vec<MutationPlan<'a>> = model
        .methods
        .iter()
        .filter_map(|func| mutation(cx, func))
        .collect();

    let self_ident = self_ident?;
    let first = model.methods.first()?;
    Some(MutationsPlan {
        trait_ident: format_ident!("{}Mutations", self_ident.unraw(), span = self_ident.span()),
        vis: &first.vis,
        self_name: self_ident.unraw().to_string(),
        methods,
    })
}

/// The message for a mutation whose first argument is neither `&self` nor a dispatcher.
const FIRST_ARG: &str = "the first argument of a mutation is `&self`, to return the events, or `dispatch: &mut Dispatch<Self>`, to dispatch them";

/// The message for a receiver that is not `&self`.
const RECEIVER_HELP: &str =
    "take `&self` and return the events, or take `dispatch: &mut Dispatch<Self>` and dispatch them";

fn mutation<'a>(cx: &Ctxt, func: &'a ImplItemFn) -> Option<MutationPlan<'a>> {
    let sig = &func.sig;
    let mut ok = true;
    if let Some(asyncness) = &sig.asyncness {
        cx.error_spanned_by(
            asyncness,
            "a mutation cannot be `async`: it decides from the state in memory; do the I/O before calling it",
        );
        ok = false;
    }
    if let syn::Safety::Unsafe(unsafety) = &sig.safety {
        cx.error_spanned_by(unsafety, "a mutation cannot be `unsafe`");
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(abi, "a mutation cannot have an ABI");
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, "a mutation cannot be variadic");
        ok = false;
    }

    let mut inputs = sig.inputs.iter();
    let form = match inputs.next() {
        Some(FnArg::Receiver(receiver)) => match &receiver.kind {
            ReceiverKind::Reference(_, _, None) => decide_output(cx, func),
            ReceiverKind::Reference(_, _, Some(_)) => {
                cx.error_spanned_by(
                    receiver,
                    format!(
                        "a mutation never changes the state directly, so it cannot take `&mut self`: {RECEIVER_HELP}"
                    ),
                );
                None
            }
            ReceiverKind::Value => {
                cx.error_spanned_by(
                    receiver,
                    format!("a mutation cannot take `self` by value: {RECEIVER_HELP}"),
                );
                None
            }
            _ => {
                cx.error_spanned_by(
                    receiver,
                    format!("a mutation takes `&self`: {RECEIVER_HELP}"),
                );
                None
            }
        },
        Some(FnArg::Typed(first)) if is_dispatch(&first.ty) => dispatch_output(cx, func),
        Some(FnArg::Typed(first)) => {
            cx.error_spanned_by(&first.ty, FIRST_ARG);
            None
        }
        None => {
            cx.error_spanned_by(&sig.ident, FIRST_ARG);
            None
        }
    };

    let args = inputs
        .enumerate()
        .filter_map(|(index, arg)| match arg {
            FnArg::Typed(arg) => Some((arg_ident(&arg.pat, index), &*arg.ty)),
            FnArg::Receiver(_) => None,
        })
        .collect();

    let form = form?;
    ok.then_some(MutationPlan { func, args, form })
}

/// The name an argument gets in the entity method: a plain identifier keeps its name (without
/// `mut`), any other pattern becomes `__argN` since a trait method cannot take patterns.
fn arg_ident(pat: &Pat, index: usize) -> Ident {
    match pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => pat.ident.clone(),
        _ => format_ident!("__arg{}", index, span = pat.span()),
    }
}

/// Whether `ty` is `&mut Dispatch<...>` (by its last path segment, so `ventyd::Dispatch` and an
/// imported `Dispatch` both count).
fn is_dispatch(ty: &Type) -> bool {
    let Type::Reference(reference) = ty else {
        return false;
    };
    if reference.mutability.is_none() {
        return false;
    }
    match &*reference.elem {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Dispatch"),
        _ => false,
    }
}

/// The `T` and `E` of a `Result<T, E>` (by its last path segment, with both arguments written).
fn result_args(ty: &Type) -> Option<(&Type, &Type)> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(err), None) => Some((ok, err)),
        _ => None,
    }
}

/// Whether `ty` is named `Result` (an alias such as `anyhow::Result<T>` counts).
fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        _ => false,
    }
}

fn decide_output<'a>(cx: &Ctxt, func: &'a ImplItemFn) -> Option<MutationForm<'a>> {
    let ReturnType::Type(_, ty) = &func.sig.output else {
        cx.error_spanned_by(
            &func.sig.ident,
            "a mutation that takes `&self` returns the events it decides: `-> Result<UserEvent, UserError>` or `-> UserEvent`",
        );
        return None;
    };
    if let Some((events, error)) = result_args(ty) {
        return Some(MutationForm::Decide(DecideOutput::Result { events, error }));
    }
    if is_result(ty) {
        // An alias with the error type hidden: the entity method could not name its error type.
        cx.error_spanned_by(
            ty,
            "write the error type of a mutation out: `Result<Events, Error>`",
        );
        return None;
    }
    Some(MutationForm::Decide(DecideOutput::Events(ty)))
}

fn dispatch_output<'a>(cx: &Ctxt, func: &'a ImplItemFn) -> Option<MutationForm<'a>> {
    match &func.sig.output {
        ReturnType::Type(_, ty) if is_result(ty) => Some(MutationForm::Dispatch { output: ty }),
        ReturnType::Type(_, ty) => {
            cx.error_spanned_by(
                ty,
                "a mutation that dispatches returns `Result<T, E>`, so that `dispatch(...)?` can stop it",
            );
            None
        }
        ReturnType::Default => {
            cx.error_spanned_by(
                &func.sig.ident,
                "a mutation that dispatches returns `Result<T, E>`, so that `dispatch(...)?` can stop it: add `-> Result<(), ventyd::Error>`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_valid_name, is_valid_separator};

    #[test]
    fn names_are_what_ventyd_accepts_less_whitespace_and_control_characters() {
        assert!(is_valid_name("user"));
        assert!(is_valid_name("name_updated"));
        assert!(is_valid_name("v2-created"));
        assert!(is_valid_name("HTTP200"));
        assert!(is_valid_name("user.created"));
        assert!(is_valid_name("order/line"));
        assert!(is_valid_name("créé"));
        assert!(is_valid_name("user*"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("user name"));
        assert!(!is_valid_name("user\tname"));
        assert!(!is_valid_name("user\u{7}"));
    }

    #[test]
    fn every_separator_ventyd_allows_is_allowed() {
        for separator in [
            ":", "::", "/", ".", "#", "_", "-", " ", " / ", "->", "*", ">",
        ] {
            assert!(is_valid_separator(separator), "{separator:?}");
        }
        assert!(!is_valid_separator(""));
        assert!(!is_valid_separator("\t"));
        assert!(!is_valid_separator("\n"));
        assert!(!is_valid_separator(":\u{0}"));
    }
}
