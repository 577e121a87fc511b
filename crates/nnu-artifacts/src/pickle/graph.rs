//! The arena of mutable nodes the pickle machine builds, and its freezing into [`Value`]s.
//!
//! A memo entry fetched twice is the same node and freezes to the same `Rc`. Freezing is recursive and
//! bounded by [`Limits::max_depth`]; a node that contains itself is an error.

use std::rc::Rc;

use super::construct::{bad, call, make_dict, persistent};
use super::Limits;
use crate::error::{Error, Result};
use crate::value::{GlobalName, Value};

/// A node's index in the arena.
pub(super) type Id = u32;

/// How a callable was applied (`REDUCE` or `NEWOBJ`); both construct the same way.
#[derive(Clone, Copy)]
pub(super) enum CallKind {
    Reduce,
    NewObj,
}

/// A value under construction: containers hold node ids so that opcodes can fill them in place.
pub(super) enum Node {
    Val(Value),
    Global(GlobalName),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Call {
        func: Id,
        args: Id,
        kind: CallKind,
        state: Option<Id>,
        list_items: Vec<Id>,
        dict_items: Vec<(Id, Id)>,
    },
    Persistent(Id),
}

/// The value of node `root` of `nodes`, each node frozen once.
pub(super) fn freeze(nodes: &[Node], root: Id, limits: Limits) -> Result<Value> {
    let mut f = Freezer {
        nodes,
        done: vec![None; nodes.len()],
        busy: vec![false; nodes.len()],
        limits,
    };
    f.freeze(root, 0)
}

/// Turns the arena into `Value`s, each node once.
struct Freezer<'n> {
    nodes: &'n [Node],
    done: Vec<Option<Value>>,
    busy: Vec<bool>,
    limits: Limits,
}

impl Freezer<'_> {
    fn freeze(&mut self, id: Id, depth: usize) -> Result<Value> {
        let i = id as usize;
        if let Some(v) = &self.done[i] {
            return Ok(v.clone());
        }
        if depth > self.limits.max_depth {
            return Err(Error::Limit {
                what: "nesting depth",
                limit: self.limits.max_depth,
            });
        }
        if self.busy[i] {
            return Err(bad(
                "value",
                "it contains itself; self-referencing structures are not supported",
            ));
        }
        self.busy[i] = true;
        let v = self.build(i, depth + 1)?;
        self.busy[i] = false;
        self.done[i] = Some(v.clone());
        Ok(v)
    }

    fn many(&mut self, ids: &[Id], depth: usize) -> Result<Vec<Value>> {
        ids.iter().map(|&c| self.freeze(c, depth)).collect()
    }

    fn pairs(&mut self, ids: &[(Id, Id)], depth: usize) -> Result<Vec<(Value, Value)>> {
        ids.iter()
            .map(|&(k, v)| Ok((self.freeze(k, depth)?, self.freeze(v, depth)?)))
            .collect()
    }

    fn build(&mut self, i: usize, depth: usize) -> Result<Value> {
        let nodes = self.nodes;
        Ok(match &nodes[i] {
            Node::Val(v) => v.clone(),
            Node::Global(g) => Value::Global(Rc::new(g.clone())),
            Node::List(ids) => Value::List(Rc::new(self.many(ids, depth)?)),
            Node::Tuple(ids) => Value::Tuple(Rc::new(self.many(ids, depth)?)),
            Node::Set(ids) => Value::Set(Rc::new(self.many(ids, depth)?)),
            Node::Dict(ids) => {
                let items = self.pairs(ids, depth)?;
                Value::Dict(Rc::new(make_dict(false, items)))
            }
            Node::Persistent(pid) => {
                let pid = self.freeze(*pid, depth)?;
                persistent(pid)
            }
            Node::Call {
                func,
                args,
                kind,
                state,
                list_items,
                dict_items,
            } => {
                let func_v = self.freeze(*func, depth)?;
                let args_v = self.freeze(*args, depth)?;
                let state_v = match state {
                    Some(s) => Some(self.freeze(*s, depth)?),
                    None => None,
                };
                let list_items = self.many(list_items, depth)?;
                let dict_items = self.pairs(dict_items, depth)?;
                let _ = kind;
                call(func_v, args_v, state_v, list_items, dict_items)?
            }
        })
    }
}
