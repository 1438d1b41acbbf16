//! The Proxmox provider's `storage_selector` language: CEL with exactly four declared
//! variables, checked the way cel-go checks it (`shared/reference/omni.md` §9.3,
//! `shared/reference/rust-stack.md` §9).
//!
//! The `cel` crate parses and evaluates but does not type-check, and it lets `type` and any
//! undeclared name through. The provider (cel-go, declared environment) rejects those at
//! compile time, so this module adds the checks that matter: undeclared references (with
//! `type` singled out), `uint` vs `int` comparisons, operand types, and a boolean result.
//! Evaluation mirrors the provider: storages in API order, first `true` wins.

use std::collections::BTreeSet;
use std::fmt;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};

/// The variables the provider declares, with their CEL types.
pub const VARIABLES: &[(&str, Ty)] = &[
    ("name", Ty::String),
    ("node", Ty::String),
    ("storageType", Ty::String),
    ("availableSpace", Ty::Uint),
];

/// What the provider binds for one storage of one node (`GET /nodes/{node}/storage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFacts {
    pub name: String,
    pub node: String,
    pub storage_type: String,
    pub available_space: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    List,
    Map,
    /// A type the checker does not track (macros, unknown functions): accepted.
    Dyn,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null_type",
            Ty::List => "list",
            Ty::Map => "map",
            Ty::Dyn => "dyn",
        })
    }
}

/// Why a selector would be rejected by the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("empty expression: the provider requires a CEL expression that returns bool")]
    Empty,
    #[error("syntax error: {message}")]
    Syntax { message: String },
    #[error(
        "`type` is not a variable of the provider's selector environment (cel-go rejects `type` here: it is the built-in type denotation)"
    )]
    TypeKeyword { col: u32 },
    #[error("undeclared reference to '{name}' (in container '')")]
    Undeclared { name: String, col: u32 },
    #[error("found no matching overload for '{op}' applied to '({left}, {right})'")]
    Overload {
        op: String,
        left: Ty,
        right: Ty,
        col: u32,
    },
    #[error("expression output type is {found}, expected bool")]
    NotBool { found: Ty },
}

impl SelectorError {
    /// What to write instead, for a person.
    pub fn fix(&self) -> String {
        match self {
            SelectorError::Empty => "write e.g. `name == \"vm_ssd\"`".into(),
            SelectorError::Syntax { .. } => "check quotes and operators; e.g. `name == \"vm_ssd\"`".into(),
            SelectorError::TypeKeyword { .. } => {
                "filter by storage type with `storageType`, e.g. `storageType == \"rbd\"`, or by name with `name == \"vm_ssd\"`".into()
            }
            SelectorError::Undeclared { name, .. } => {
                let vars: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
                match crate::yaml::closest(name, &vars) {
                    Some(s) => format!("did you mean `{s}`? the variables are {}", vars.join(", ")),
                    None => format!("the only variables are {}", vars.join(", ")),
                }
            }
            SelectorError::Overload { left: Ty::Uint, right: Ty::Int, .. }
            | SelectorError::Overload { left: Ty::Int, right: Ty::Uint, .. } => {
                "`availableSpace` is a uint: write unsigned literals with a `u` suffix, e.g. `availableSpace > 100000000000u`".into()
            }
            SelectorError::Overload { .. } => "compare values of the same type".into(),
            SelectorError::NotBool { .. } => "the selector must be a condition, e.g. `name == \"vm_ssd\"`".into(),
        }
    }

    /// 1-based column in the expression, when known.
    pub fn column(&self) -> Option<u32> {
        match self {
            SelectorError::TypeKeyword { col }
            | SelectorError::Undeclared { col, .. }
            | SelectorError::Overload { col, .. } => Some(*col),
            _ => None,
        }
    }
}

/// A compiled and checked selector.
pub struct StorageSelector {
    source: String,
    program: cel::Program,
}

impl fmt::Debug for StorageSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageSelector")
            .field("source", &self.source)
            .finish()
    }
}

impl StorageSelector {
    /// Parse and check like the provider does at provisioning time.
    pub fn compile(source: &str) -> Result<Self, SelectorError> {
        if source.trim().is_empty() {
            return Err(SelectorError::Empty);
        }
        let program = cel::Program::compile(source).map_err(|e| SelectorError::Syntax {
            message: e
                .errors
                .iter()
                .map(|x| x.msg.clone())
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        let checker = Checker {
            info: program.source_info(),
        };
        let ty = checker.check(program.expression())?;
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            return Err(SelectorError::NotBool { found: ty });
        }
        Ok(StorageSelector {
            source: source.to_string(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate against one storage. An evaluation error counts as "no match", which is
    /// what the provider does with a non-true result.
    pub fn matches(&self, s: &StorageFacts) -> bool {
        let mut ctx = cel::Context::default();
        ctx.add_variable_from_value("name", s.name.clone());
        ctx.add_variable_from_value("node", s.node.clone());
        ctx.add_variable_from_value("storageType", s.storage_type.clone());
        ctx.add_variable_from_value("availableSpace", cel::Value::UInt(s.available_space));
        matches!(self.program.execute(&ctx), Ok(cel::Value::Bool(true)))
    }

    /// The provider's choice on one node: the first storage, in API order, that matches.
    pub fn pick<'s>(&self, storages: &'s [StorageFacts]) -> Option<&'s StorageFacts> {
        storages.iter().find(|s| self.matches(s))
    }

    /// The provider's error text when nothing matches.
    pub fn no_match_message(&self) -> String {
        format!(
            "failed to pick the disk: no matches for the condition {:?}",
            self.source
        )
    }
}

struct Checker<'a> {
    info: &'a cel::common::ast::SourceInfo,
}

impl Checker<'_> {
    fn col(&self, e: &IdedExpr) -> u32 {
        let start = self.info.offset_for(e.id).map(|(s, _)| s).unwrap_or(0);
        // Offsets are in bytes from the start of the source; the provider's messages count
        // columns from 1 on the offending line.
        let before = &self.info.source[..(start as usize).min(self.info.source.len())];
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        before[line_start..].chars().count() as u32 + 1
    }

    fn check(&self, e: &IdedExpr) -> Result<Ty, SelectorError> {
        match &e.expr {
            Expr::Ident(name) => match VARIABLES.iter().find(|(n, _)| n == name) {
                Some((_, ty)) => Ok(*ty),
                None if name == "type" => Err(SelectorError::TypeKeyword { col: self.col(e) }),
                None => Err(SelectorError::Undeclared {
                    name: name.clone(),
                    col: self.col(e),
                }),
            },
            Expr::Literal(l) => Ok(match l {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::List(l) => {
                for el in &l.elements {
                    self.check(el)?;
                }
                Ok(Ty::List)
            }
            Expr::Map(_) | Expr::Struct(_) => Ok(Ty::Map),
            Expr::Select(s) => {
                // Field selection on a declared scalar does not exist in this environment.
                self.check(&s.operand)?;
                Ok(Ty::Dyn)
            }
            Expr::Comprehension(_) | Expr::Unspecified => Ok(Ty::Dyn),
            Expr::Call(call) => {
                self.check_call(e, &call.func_name, call.target.as_deref(), &call.args)
            }
        }
    }

    fn check_call(
        &self,
        e: &IdedExpr,
        func: &str,
        target: Option<&IdedExpr>,
        args: &[IdedExpr],
    ) -> Result<Ty, SelectorError> {
        use cel::common::ast::operators as op;
        let target_ty = target.map(|t| self.check(t)).transpose()?;
        let tys = args
            .iter()
            .map(|a| self.check(a))
            .collect::<Result<Vec<_>, _>>()?;
        let overload = |left: Ty, right: Ty| SelectorError::Overload {
            op: func.to_string(),
            left,
            right,
            col: args
                .get(1)
                .map(|a| self.col(a))
                .unwrap_or_else(|| self.col(e)),
        };
        let same = |a: Ty, b: Ty| a == b || a == Ty::Dyn || b == Ty::Dyn;
        match func {
            f if [op::EQUALS, op::NOT_EQUALS].contains(&f) => {
                let (l, r) = (tys[0], tys[1]);
                if !same(l, r) && l != Ty::Null && r != Ty::Null {
                    return Err(overload(l, r));
                }
                Ok(Ty::Bool)
            }
            f if [op::LESS, op::LESS_EQUALS, op::GREATER, op::GREATER_EQUALS].contains(&f) => {
                let (l, r) = (tys[0], tys[1]);
                if !same(l, r) || matches!(l, Ty::Null | Ty::List | Ty::Map) {
                    return Err(overload(l, r));
                }
                Ok(Ty::Bool)
            }
            f if [op::LOGICAL_AND, op::LOGICAL_OR].contains(&f) => {
                for (a, t) in args.iter().zip(&tys) {
                    if !matches!(t, Ty::Bool | Ty::Dyn) {
                        return Err(SelectorError::Overload {
                            op: func.into(),
                            left: tys[0],
                            right: tys[1],
                            col: self.col(a),
                        });
                    }
                }
                Ok(Ty::Bool)
            }
            f if f == op::LOGICAL_NOT => Ok(Ty::Bool),
            f if [op::ADD, op::SUBSTRACT, op::MULTIPLY, op::DIVIDE, op::MODULO].contains(&f) => {
                let (l, r) = (tys[0], tys[1]);
                if !same(l, r) {
                    return Err(overload(l, r));
                }
                Ok(l)
            }
            f if f == op::NEGATE => Ok(tys[0]),
            f if f == op::CONDITIONAL => Ok(if same(tys[1], tys[2]) {
                tys[1]
            } else {
                Ty::Dyn
            }),
            f if f == op::IN => Ok(Ty::Bool),
            "contains" | "startsWith" | "endsWith" | "matches" => {
                let recv = target_ty.unwrap_or(Ty::String);
                if !matches!(recv, Ty::String | Ty::Dyn) {
                    return Err(SelectorError::Overload {
                        op: func.into(),
                        left: recv,
                        right: tys.first().copied().unwrap_or(Ty::Dyn),
                        col: self.col(e),
                    });
                }
                Ok(Ty::Bool)
            }
            "size" => Ok(Ty::Int),
            "int" => Ok(Ty::Int),
            "uint" => Ok(Ty::Uint),
            "double" => Ok(Ty::Double),
            "string" => Ok(Ty::String),
            _ => Ok(Ty::Dyn),
        }
    }
}

/// Variable names an expression reads, for messages.
pub fn referenced_variables(source: &str) -> BTreeSet<String> {
    cel::Program::compile(source)
        .map(|p| {
            p.references()
                .variables()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(name: &str, ty: &str, avail: u64) -> StorageFacts {
        StorageFacts {
            name: name.into(),
            node: "golf".into(),
            storage_type: ty.into(),
            available_space: avail,
        }
    }

    #[test]
    fn name_selector_compiles_and_picks_first_match_in_api_order() {
        let s = StorageSelector::compile(r#"name == "vm_ssd" || storageType == "rbd""#).unwrap();
        let list = [
            storage("local", "dir", 1),
            storage("ceph2", "rbd", 5),
            storage("vm_ssd", "rbd", 9),
        ];
        assert_eq!(s.pick(&list).unwrap().name, "ceph2");
    }

    #[test]
    fn type_is_rejected_with_storage_type_as_the_fix() {
        let e = StorageSelector::compile(r#"type == "rbd""#).unwrap_err();
        assert!(matches!(e, SelectorError::TypeKeyword { col: 1 }), "{e:?}");
        assert!(e.fix().contains("storageType"));
    }

    #[test]
    fn undeclared_identifier_is_rejected_even_behind_short_circuit() {
        let e = StorageSelector::compile(r#"name == "x" || storage == "ceph""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "undeclared reference to 'storage' (in container '')"
        );
        assert_eq!(e.column(), Some(16));
    }

    #[test]
    fn uint_compared_with_int_literal_is_an_overload_error() {
        let e = StorageSelector::compile("availableSpace > 100").unwrap_err();
        assert_eq!(
            e.to_string(),
            "found no matching overload for '_>_' applied to '(uint, int)'"
        );
        assert!(e.fix().contains("100000000000u"));
        assert!(StorageSelector::compile("availableSpace > 100u").is_ok());
    }

    #[test]
    fn non_bool_result_is_rejected() {
        let e = StorageSelector::compile(r#"name"#).unwrap_err();
        assert_eq!(e, SelectorError::NotBool { found: Ty::String });
    }

    #[test]
    fn no_match_message_quotes_like_go() {
        let s = StorageSelector::compile(r#"name == "ssd-pool""#).unwrap();
        assert_eq!(
            s.no_match_message(),
            r#"failed to pick the disk: no matches for the condition "name == \"ssd-pool\"""#
        );
    }
}
