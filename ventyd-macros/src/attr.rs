//! Reading attributes: `#[event(...)]`, `#[aggregate(...)]`, `#[mutation]`, and the keys of
//! `#[serde(...)]`/`#[schemars(...)]`/`#[derive(...)]` that `#[event]` has to know about.
//!
//! Every reader records its errors in the [`Ctxt`] and goes on with the next key, so that one
//! compile reports every bad key at once.

use proc_macro2::{Group, TokenStream};
use quote::{ToTokens, quote};
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Lit, LitStr, Meta, Path, Token, Type, token};

use crate::ctxt::Ctxt;
use crate::symbol::{
    AGGREGATE, BODY, CRATE, DERIVE, ENTITY, EVENT, EVENT_KEY, INITIAL, MUTATION, RENAME, SCHEMARS,
    SEPARATOR, SERDE,
};

/// The keys of `#[event(...)]` on the enum (the macro's own arguments, and any further
/// `#[event(...)]` attributes on the enum).
#[derive(Default)]
pub struct EventArgs {
    pub entity: Option<LitStr>,
    pub separator: Option<LitStr>,
    /// `crate = "..."`: the path to ventyd, for a facade.
    pub krate: Option<LitStr>,
    /// Whether an attribute could not be read to its end (already reported): a key missing
    /// after that is not reported again.
    pub malformed: bool,
}

/// The keys of `#[event(...)]` on a variant.
#[derive(Default)]
pub struct VariantArgs {
    /// The `initial` key, kept for its span.
    pub initial: Option<Path>,
    pub rename: Option<LitStr>,
    /// The `body` key (for its span) and the struct name it gives.
    pub body: Option<(Path, Ident)>,
}

/// One key found in a `#[serde(...)]` or `#[schemars(...)]` attribute.
pub struct SerdeKey {
    pub path: Path,
    /// `serde` or `schemars`.
    pub attr: Ident,
}

/// What `#[event]` reads from the `#[serde(...)]` and `#[schemars(...)]` attributes of the enum
/// or of one variant.
#[derive(Default)]
pub struct SerdeAttrs {
    /// Every key, in order, for the checks of keys that would change the wire format.
    pub keys: Vec<SerdeKey>,
    /// `rename_all` values (`= "..."` or `(...)`) with the attribute they came from.
    pub rename_all: Vec<(Ident, TokenStream)>,
    /// `rename_all_fields` values with the attribute they came from.
    pub rename_all_fields: Vec<(Ident, TokenStream)>,
}

/// Whether `attr` is `#[event ...]`.
pub fn is_event_attr(attr: &Attribute) -> bool {
    attr.path().is_ident(EVENT)
}

/// Whether `attr` is `#[mutation ...]` (or `#[ventyd::mutation ...]`).
pub fn is_mutation_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    let segments: Vec<&Ident> = path.segments.iter().map(|s| &s.ident).collect();
    match segments.as_slice() {
        [last] => path.leading_colon.is_none() && *last == MUTATION,
        [krate, last] => *krate == "ventyd" && *last == MUTATION,
        _ => false,
    }
}

/// How a key path reads in a message: `entity`, `serde::tag`.
pub fn key_name(path: &Path) -> String {
    path.to_token_stream().to_string().replace(' ', "")
}

/// Reads the macro's own arguments: `#[event(entity = "user", separator = "::")]`.
pub fn parse_event_args(cx: &Ctxt, args: &mut EventArgs, tokens: TokenStream) {
    let parser = syn::meta::parser(|meta| event_arg(cx, args, &meta));
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
        args.malformed = true;
    }
}

/// Reads a further `#[event(...)]` attribute on the enum, into the same arguments.
pub fn parse_enum_event_attr(cx: &Ctxt, args: &mut EventArgs, attr: &Attribute) {
    match &attr.meta {
        Meta::List(_) => {
            if let Err(error) = attr.parse_nested_meta(|meta| event_arg(cx, args, &meta)) {
                cx.syn_error(error);
                args.malformed = true;
            }
        }
        Meta::Path(_) | Meta::NameValue(_) => {
            cx.error_spanned_by(attr, r#"expected #[event(entity = "...")]"#);
        }
    }
}

fn event_arg(cx: &Ctxt, args: &mut EventArgs, meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.path.is_ident(ENTITY) {
        let lit = string_value(meta, r#"entity = "user""#)?;
        set_once(cx, &mut args.entity, meta, lit);
    } else if meta.path.is_ident(SEPARATOR) {
        let lit = string_value(meta, r#"separator = "::""#)?;
        set_once(cx, &mut args.separator, meta, lit);
    } else if meta.path.is_ident(CRATE) {
        let lit = string_value(meta, r#"crate = "my_facade::ventyd""#)?;
        set_once(cx, &mut args.krate, meta, lit);
    } else {
        let key = key_name(&meta.path);
        let hint = if [INITIAL, RENAME, BODY].contains(&key.as_str()) {
            format!(" (`{key}` goes on a variant)")
        } else {
            String::new()
        };
        cx.error_spanned_by(
            &meta.path,
            format!(
                r#"unknown key `{key}` in #[event(...)] on an enum: expected `entity = "..."`, `separator = "..."` or `crate = "..."`{hint}"#
            ),
        );
        skip_value(meta)?;
    }
    Ok(())
}

/// Reads the `#[event(...)]` attributes of one variant.
pub fn parse_variant_args(cx: &Ctxt, attrs: &[Attribute]) -> VariantArgs {
    let mut args = VariantArgs::default();
    for attr in attrs.iter().filter(|attr| is_event_attr(attr)) {
        match &attr.meta {
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| variant_arg(cx, &mut args, &meta));
                if let Err(error) = result {
                    cx.syn_error(error);
                }
            }
            Meta::Path(_) | Meta::NameValue(_) => cx.error_spanned_by(
                attr,
                r#"expected #[event(initial)] or #[event(rename = "...")]"#,
            ),
        }
    }
    args
}

fn variant_arg(cx: &Ctxt, args: &mut VariantArgs, meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.path.is_ident(INITIAL) {
        if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
            cx.error_spanned_by(
                &meta.path,
                "`initial` takes no value: write #[event(initial)]",
            );
            skip_value(meta)?;
        }
        set_once(cx, &mut args.initial, meta, meta.path.clone());
    } else if meta.path.is_ident(RENAME) {
        let lit = string_value(meta, r#"rename = "removed""#)?;
        set_once(cx, &mut args.rename, meta, lit);
    } else if meta.path.is_ident(BODY) {
        let ident = ident_value(meta)?;
        set_once(cx, &mut args.body, meta, (meta.path.clone(), ident));
    } else {
        let key = key_name(&meta.path);
        let hint = if [ENTITY, SEPARATOR].contains(&key.as_str()) {
            format!(" (`{key}` goes on the enum)")
        } else {
            String::new()
        };
        cx.error_spanned_by(
            &meta.path,
            format!(
                r#"unknown key `{key}` in #[event(...)] on a variant: expected `initial`, `rename = "..."` or `body = Name`{hint}"#
            ),
        );
        skip_value(meta)?;
    }
    Ok(())
}

/// Reads `#[aggregate(event = Type, crate = "...")]` from the attributes of a
/// `#[derive(Aggregate)]` input. Also returns whether an attribute could not be read to its end
/// (already reported).
pub fn parse_aggregate_attrs(
    cx: &Ctxt,
    attrs: &[Attribute],
) -> (Option<Type>, Option<LitStr>, bool) {
    let mut event: Option<Type> = None;
    let mut krate: Option<LitStr> = None;
    let mut malformed = false;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(AGGREGATE)) {
        match &attr.meta {
            Meta::List(_) => {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident(EVENT_KEY) {
                        if !meta.input.peek(Token![=]) {
                            return Err(syn::Error::new_spanned(
                                &meta.path,
                                "expected `event = ...`: the event enum of this aggregate",
                            ));
                        }
                        let ty: Type = meta.value()?.parse()?;
                        set_once(cx, &mut event, &meta, ty);
                    } else if meta.path.is_ident(CRATE) {
                        let lit = string_value(&meta, r#"crate = "my_facade::ventyd""#)?;
                        set_once(cx, &mut krate, &meta, lit);
                    } else {
                        cx.error_spanned_by(
                            &meta.path,
                            format!(
                                "unknown key `{}` in #[aggregate(...)]: expected `event = ...` or `crate = \"...\"`",
                                key_name(&meta.path)
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(error) = result {
                    cx.syn_error(error);
                    malformed = true;
                }
            }
            Meta::Path(_) | Meta::NameValue(_) => {
                cx.error_spanned_by(attr, "expected #[aggregate(event = ...)]");
                malformed = true;
            }
        }
    }
    (event, krate, malformed)
}

/// Reads the keys of the `#[serde(...)]` and `#[schemars(...)]` attributes in `attrs`.
///
/// A malformed attribute is left alone: serde or schemars reports it better than we could.
pub fn scan_serde_attrs(attrs: &[Attribute]) -> SerdeAttrs {
    let mut found = SerdeAttrs::default();
    for attr in attrs {
        let Some(name) = attr.path().get_ident() else {
            continue;
        };
        if (name != SERDE && name != SCHEMARS) || !matches!(attr.meta, Meta::List(_)) {
            continue;
        }
        // Errors are ignored on purpose, see above.
        let _ = attr.parse_nested_meta(|meta| {
            let value = capture_value(&meta)?;
            if meta.path.is_ident("rename_all") {
                found.rename_all.push((name.clone(), value));
            } else if meta.path.is_ident("rename_all_fields") {
                found.rename_all_fields.push((name.clone(), value));
            }
            found.keys.push(SerdeKey {
                path: meta.path,
                attr: name.clone(),
            });
            Ok(())
        });
    }
    found
}

/// The paths in the `#[derive(...)]` attributes in `attrs`, in order.
pub fn derive_paths(attrs: &[Attribute]) -> Vec<Path> {
    let mut paths = Vec::new();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(DERIVE)) {
        if let Ok(list) = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated) {
            paths.extend(list);
        }
    }
    paths
}

/// Reads `key = "..."`; `example` is what to write, for the message.
fn string_value(meta: &ParseNestedMeta, example: &str) -> syn::Result<LitStr> {
    if !meta.input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            &meta.path,
            format!("expected `{example}`"),
        ));
    }
    let mut expr: Expr = meta.value()?.parse()?;
    // A literal passed through a `macro_rules!` fragment (`$name:literal`) arrives wrapped in an
    // invisible group.
    while let Expr::Group(group) = expr {
        expr = *group.expr;
    }
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(lit),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal: `{example}`"),
        )),
    }
}

/// Reads `body = Name`.
fn ident_value(meta: &ParseNestedMeta) -> syn::Result<Ident> {
    const EXAMPLE: &str = "expected a struct name: `body = AccountOpened`";
    if !meta.input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(&meta.path, EXAMPLE));
    }
    let ty: Type = meta.value()?.parse()?;
    match &ty {
        Type::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            match path.path.get_ident() {
                Some(ident) => Ok(ident.clone()),
                None => Err(syn::Error::new_spanned(&ty, EXAMPLE)),
            }
        }
        _ => Err(syn::Error::new_spanned(&ty, EXAMPLE)),
    }
}

/// Stores `value` unless the key was already given, which is an error on the second key.
fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, meta: &ParseNestedMeta, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(
            &meta.path,
            format!("duplicate key `{}`", key_name(&meta.path)),
        );
    } else {
        *slot = Some(value);
    }
}

/// Consumes the value of a key (`= expr`, `(...)` or nothing) and returns its tokens, so that
/// reading goes on with the next key.
fn capture_value(meta: &ParseNestedMeta) -> syn::Result<TokenStream> {
    if meta.input.peek(Token![=]) {
        let eq: Token![=] = meta.input.parse()?;
        let value: Expr = meta.input.parse()?;
        Ok(quote!(#eq #value))
    } else if meta.input.peek(token::Paren) {
        let group: Group = meta.input.parse()?;
        Ok(group.into_token_stream())
    } else {
        Ok(TokenStream::new())
    }
}

fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    capture_value(meta).map(drop)
}

/// Reads the arguments of a macro that takes only `crate = "..."` (`#[mutations]`,
/// `#[body]`); any other key is an error.
pub fn parse_crate_arg(cx: &Ctxt, tokens: TokenStream, macro_name: &str) -> Option<LitStr> {
    let mut krate = None;
    if tokens.is_empty() {
        return krate;
    }
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident(CRATE) {
            let lit = string_value(&meta, r#"crate = "my_facade::ventyd""#)?;
            set_once(cx, &mut krate, &meta, lit);
            return Ok(());
        }
        cx.error_spanned_by(
            &meta.path,
            format!(
                "unknown key `{}`: {macro_name} takes only `crate = \"...\"`",
                key_name(&meta.path)
            ),
        );
        skip_value(&meta)
    });
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
    }
    krate
}
