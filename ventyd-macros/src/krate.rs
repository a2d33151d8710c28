//! The path generated code names ventyd by: `::ventyd`, or the one given with
//! `crate = "..."` (as serde's `#[serde(crate = "...")]`), for a facade crate that re-exports
//! ventyd under another name.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{LitStr, Path};

use crate::ctxt::Ctxt;

/// The path to the ventyd crate in generated code.
#[derive(Clone)]
pub struct Krate(TokenStream);

impl Default for Krate {
    fn default() -> Self {
        Krate(quote!(::ventyd))
    }
}

impl Krate {
    /// `crate = "..."` as given (reported in `cx` when it is not a path), or `::ventyd`.
    pub fn from_lit(cx: &Ctxt, lit: Option<&LitStr>) -> Self {
        let Some(lit) = lit else {
            return Krate::default();
        };
        match lit.parse::<Path>() {
            Ok(path) => Krate(path.into_token_stream()),
            Err(_) => {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "`crate = {:?}` is not a path: write the path to ventyd, `crate = \"my_facade::ventyd\"`",
                        lit.value()
                    ),
                );
                Krate::default()
            }
        }
    }

    /// The path with every token at `span`, for `quote_spanned!` code whose errors must point
    /// at the user's tokens rather than at the attribute.
    pub fn spanned(&self, span: Span) -> TokenStream {
        self.0
            .clone()
            .into_iter()
            .map(|mut token| {
                token.set_span(span);
                token
            })
            .collect()
    }

    /// The string serde's and schemars' own `crate = "..."` take, for ventyd's copy of `name`.
    pub fn private_str(&self, name: &str) -> LitStr {
        let path = self.0.to_string().replace(' ', "");
        LitStr::new(&format!("{path}::__private::{name}"), Span::call_site())
    }
}

impl ToTokens for Krate {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.0.to_tokens(tokens);
    }
}
