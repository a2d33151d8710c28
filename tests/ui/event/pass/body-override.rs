//! `body = ...` names the struct generated for a named-field initial variant; the enum's other
//! derives, field attributes and `rename_all_fields` carry over to it.
use ventyd::prelude::*;

#[event(entity = "account")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all_fields = "camelCase")]
pub enum Account {
    /// The account is opened.
    #[event(initial, body = AccountOpening)]
    Opened {
        /// Who owns it.
        #[schemars(length(min = 3))]
        owner_name: String,
        #[serde(default)]
        overdraft_cents: u64,
    },
    Closed {},
}

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = Account)]
pub struct AccountState {
    pub owner: String,
    pub open: bool,
}

impl Reducer for AccountState {
    fn init(opening: &AccountOpening) -> Self {
        AccountState {
            owner: opening.owner_name.clone(),
            open: true,
        }
    }
    fn apply(&mut self, event: &Account) {
        match event {
            Account::Opened { owner_name, .. } => self.owner = owner_name.clone(),
            Account::Closed {} => self.open = false,
        }
    }
}

fn main() {
    let opening = AccountOpening {
        owner_name: "Ada".into(),
        overdraft_cents: 0,
    };
    // The copied derives: Clone, PartialEq, Eq, Hash, Debug.
    let mut set = std::collections::HashSet::new();
    set.insert(opening.clone());
    assert_eq!(set.len(), 1);

    // The body reads like the variant's body on the wire: camelCase fields, `default` kept.
    let body: AccountOpening =
        serde_json::from_value(serde_json::json!({ "ownerName": "Ada" })).unwrap();
    assert_eq!(body, opening);
    let event = serde_json::to_value(Account::from(opening.clone())).unwrap();
    assert_eq!(event["body"], serde_json::to_value(&opening).unwrap());

    let account = Entity::<AccountState>::create(opening).unwrap();
    assert_eq!(account.state().owner, "Ada");

    // The schema carries the field attributes.
    let schema =
        serde_json::to_value(ventyd::__private::schemars::schema_for!(AccountOpening)).unwrap();
    assert_eq!(schema["properties"]["ownerName"]["minLength"], 3);
}
