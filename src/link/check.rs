//! Linkage settings checked before any work. Every piece of SQL in a
//! settings file must parse and name only columns its place allows (when
//! the file is loaded), and every `l.`/`r.` column must exist on its side
//! and every snippet must plan (before the candidate pairs are built).
//! A typo then stops the run at once with the file, the key and what is
//! wrong, instead of surfacing as a planning error deep in a run.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use anyhow::Result;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{self, Expr, Ident};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::settings::Settings;

/// Where a snippet of SQL is evaluated, which decides the columns it may
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Over a candidate pair: `l.<column>` (the record) and `r.<column>`
    /// (the registry person). Blocking rules, deterministic rules and the
    /// comparisons' level expressions.
    Pair,
    /// Over a pair's `<comparison>_level` columns, unqualified: training
    /// sessions' `when`.
    Levels,
    /// Over the best pair: its `<comparison>_level` and `_weight` columns,
    /// `match_weight`, `match_probability`, `runner_up_weight` and
    /// `candidates`, bare or as `b.<column>`: `link_requires`.
    Decision,
}

/// One piece of SQL from a settings file.
#[derive(Debug, Clone)]
pub struct Snippet {
    /// Its key in the file, e.g. `blocking[2]`.
    pub key: String,
    /// The SQL.
    pub sql: String,
    /// Where it is evaluated.
    pub scope: Scope,
}

/// A column a snippet names: its qualifier (`l`, `r`, `b`) if any, and
/// the column, both as DataFusion resolves them (unquoted names folded to
/// lower case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnRef {
    /// `l`, `r`, `b`, or none.
    pub qualifier: Option<String>,
    /// The column.
    pub column: String,
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.qualifier {
            Some(q) => write!(f, "{q}.{}", self.column),
            None => write!(f, "{}", self.column),
        }
    }
}

/// Parse one SQL expression, refusing anything after it.
pub fn parse(sql: &str) -> std::result::Result<Expr, String> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| e.to_string())?;
    let expr = parser.parse_expr().map_err(|e| e.to_string())?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!(
            "unexpected '{}' after the expression (one SQL condition is expected here)",
            next.token
        ));
    }
    Ok(expr)
}

fn folded(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// The columns an expression names.
pub fn columns(expr: &Expr) -> Vec<ColumnRef> {
    let mut found = Vec::new();
    let _ = ast::visit_expressions(expr, |e| {
        match e {
            Expr::Identifier(id) => found.push(ColumnRef {
                qualifier: None,
                column: folded(id),
            }),
            Expr::CompoundIdentifier(parts) if parts.len() >= 2 => found.push(ColumnRef {
                qualifier: Some(folded(&parts[0])),
                column: parts[1..].iter().map(folded).collect::<Vec<_>>().join("."),
            }),
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// The SQL with every bare column qualified by `alias` (`x_level` →
/// `b.x_level`); columns already qualified are left alone.
pub fn qualified(sql: &str, alias: &str) -> std::result::Result<String, String> {
    let mut expr = parse(sql)?;
    let _ = ast::visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(id) = e {
            *e = Expr::CompoundIdentifier(vec![Ident::new(alias), id.clone()]);
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(expr.to_string())
}

/// The columns of the scored pairs a `Levels` or `Decision` snippet may
/// name.
fn scored_pair_columns(settings: &Settings, scope: Scope) -> BTreeSet<String> {
    let mut allowed: BTreeSet<String> = settings
        .comparisons
        .iter()
        .map(|c| format!("{}_level", c.name))
        .collect();
    if scope == Scope::Decision {
        allowed.extend(
            settings
                .comparisons
                .iter()
                .map(|c| format!("{}_weight", c.name)),
        );
        allowed.extend(
            [
                "match_weight",
                "match_probability",
                "runner_up_weight",
                "candidates",
            ]
            .map(String::from),
        );
    }
    allowed
}

/// The snippet parsed, or a bad-settings error naming its key.
fn parsed(settings: &Settings, snippet: &Snippet) -> Result<Expr> {
    Ok(parse(&snippet.sql).map_err(|e| {
        settings.origin.error(
            &snippet.key,
            format!("'{}' is not a SQL condition: {e}", snippet.sql),
        )
    })?)
}

/// Check one snippet without the data: it parses, and names columns the
/// way its place needs (`l.`/`r.` over a pair; known level columns over
/// scored pairs).
pub fn snippet(settings: &Settings, snippet: &Snippet) -> Result<()> {
    let origin = &settings.origin;
    for column in columns(&parsed(settings, snippet)?) {
        let fault = match (snippet.scope, column.qualifier.as_deref()) {
            (Scope::Pair, Some("l" | "r")) => None,
            (Scope::Pair, _) => Some(format!(
                "column '{column}' must be named as l.<column> (the department record) or r.<column> (the registry person)"
            )),
            (Scope::Levels, None) | (Scope::Decision, None | Some("b")) => {
                let allowed = scored_pair_columns(settings, snippet.scope);
                (!allowed.contains(&column.column)).then(|| {
                    format!(
                        "no column '{column}' here; it may name {}",
                        allowed.into_iter().collect::<Vec<_>>().join(", ")
                    )
                })
            }
            (Scope::Levels, Some(_)) | (Scope::Decision, Some(_)) => Some(format!(
                "column '{column}': name the level columns without a table (e.g. {}_level)",
                settings
                    .comparisons
                    .first()
                    .map_or("id_number", |c| c.name.as_str())
            )),
        };
        if let Some(message) = fault {
            Err(origin.error(&snippet.key, format!("in '{}': {message}", snippet.sql)))?;
        }
    }
    Ok(())
}

/// The column names of a query's result, as planned (nothing is read).
async fn columns_of(ctx: &SessionContext, sql: &str) -> Result<BTreeSet<String>> {
    Ok(ctx
        .sql(sql)
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect())
}

/// Check every snippet against the two sides before any work: each `l.`
/// column must be on the record side and each `r.` column on the registry
/// side, and each snippet must plan (known functions, types that fit).
/// `left` and `right` are the sides' SQL; only their plans are made.
pub async fn against_sides(
    ctx: &SessionContext,
    settings: &Settings,
    source: &str,
    left: &str,
    right: &str,
) -> Result<()> {
    let origin = &settings.origin;
    let sides = [
        (
            "l",
            "the department record",
            source.to_string(),
            columns_of(ctx, left).await?,
        ),
        (
            "r",
            "the registry person",
            settings.registry.to_string(),
            columns_of(ctx, right).await?,
        ),
    ];
    let levels: Vec<String> = settings
        .comparisons
        .iter()
        .map(|c| {
            format!(
                "CAST(0 AS INT) AS {}_level, 0.0 AS {}_weight",
                c.name, c.name
            )
        })
        .collect();
    let scored = format!(
        "SELECT {}, 0.0 AS match_weight, 0.5 AS match_probability, 0.0 AS runner_up_weight, CAST(1 AS BIGINT) AS candidates",
        levels.join(", ")
    );
    for snippet in settings.snippets() {
        if snippet.scope == Scope::Pair {
            for column in columns(&parsed(settings, &snippet)?) {
                let Some((alias, what, name, present)) = sides
                    .iter()
                    .find(|s| Some(s.0) == column.qualifier.as_deref())
                else {
                    continue;
                };
                if !present.contains(&column.column) {
                    Err(origin.error(
                        &snippet.key,
                        format!(
                            "in '{}': no column '{}' on side {alias} ({what}, source '{name}'); it has {}",
                            snippet.sql,
                            column.column,
                            present.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ))?;
                }
            }
        }
        let probe = match snippet.scope {
            Scope::Pair => format!(
                "SELECT ({}) AS probe FROM ({left}) l CROSS JOIN ({right}) r",
                snippet.sql
            ),
            Scope::Levels => format!("SELECT ({}) AS probe FROM ({scored})", snippet.sql),
            Scope::Decision => format!("SELECT ({}) AS probe FROM ({scored}) b", snippet.sql),
        };
        let planned = match ctx.sql(&probe).await {
            Ok(df) => df.into_optimized_plan().map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = planned {
            Err(origin.error(
                &snippet.key,
                format!(
                    "'{}' cannot be planned: {}",
                    snippet.sql,
                    e.strip_backtrace()
                ),
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_with_their_qualifiers_and_folded() {
        let expr =
            parse("substr(l.ID_Number, 1, 14) = substr(r.id_number, 1, 14) AND NOT x").unwrap();
        let found: Vec<String> = columns(&expr).iter().map(|c| c.to_string()).collect();
        assert_eq!(found, ["l.id_number", "r.id_number", "x"]);
    }

    #[test]
    fn trailing_text_and_broken_sql_do_not_parse() {
        assert!(parse("l.a = r.a").is_ok());
        assert!(parse("l.a = = r.a").is_err());
        let trailing = parse("l.a = r.a r.b").unwrap_err();
        assert!(trailing.contains("after the expression"), "{trailing}");
        assert!(parse("l.a = r.a; DROP TABLE x").is_err());
    }

    #[test]
    fn bare_columns_are_qualified_and_qualified_ones_kept() {
        assert_eq!(
            qualified("id_number_level BETWEEN 1 AND 3 OR b.name_level = 1", "b").unwrap(),
            "b.id_number_level BETWEEN 1 AND 3 OR b.name_level = 1"
        );
    }
}
