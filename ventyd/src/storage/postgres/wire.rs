//! The few PostgreSQL types the store reads and writes in binary form, encoded here rather than
//! through the driver's optional `chrono` and `serde_json` features: commit times, JSONB text and
//! transaction ids.

use std::error::Error as StdError;

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::time::Timestamp;

type BoxError = Box<dyn StdError + Sync + Send>;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz`, to and from a [`Timestamp`] (milliseconds; a time stored by another writer
/// with microseconds is read rounded down to its millisecond).
#[derive(Debug, Clone, Copy)]
pub(super) struct PgTime(pub Timestamp);

impl ToSql for PgTime {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        let micros = self
            .0
            .as_millis()
            .checked_mul(1_000)
            .and_then(|m| m.checked_sub(PG_EPOCH_MICROS))
            .ok_or("a time out of PostgreSQL's range")?;
        out.extend_from_slice(&micros.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| "a timestamptz of the wrong size")?;
        let micros = i64::from_be_bytes(bytes);
        // `infinity` and `-infinity` are i64::MAX and i64::MIN.
        if micros == i64::MAX || micros == i64::MIN {
            return Err("an infinite timestamp".into());
        }
        let unix = micros
            .checked_add(PG_EPOCH_MICROS)
            .ok_or("a timestamp out of range")?;
        Ok(PgTime(Timestamp::from_millis(unix.div_euclid(1_000))))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
}

/// The text of a `jsonb` (or `json`) value, borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub(super) struct JsonText<'a>(pub &'a str);

impl<'a> FromSql<'a> for JsonText<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let text = if *ty == Type::JSONB {
            // Binary jsonb is a version byte (1) and the text.
            match raw.split_first() {
                Some((1, text)) => text,
                Some((v, _)) => return Err(format!("jsonb of format version {v}").into()),
                None => return Err("an empty jsonb value".into()),
            }
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(text)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB || *ty == Type::JSON
    }
}

/// JSON text sent as a `jsonb` parameter, which the server parses (and rejects when it is not
/// JSON, or holds `\u0000`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Jsonb<'a>(pub &'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

/// A full transaction id (`xid8`): 64 bits, never wrapping around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Xid8(pub u64);

impl ToSql for Xid8 {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, BoxError> {
        out.extend_from_slice(&self.0.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::XID8
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Xid8 {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "an xid8 of the wrong size")?;
        Ok(Xid8(u64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::XID8
    }
}
