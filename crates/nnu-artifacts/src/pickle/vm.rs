//! The pickle machine: runs the opcodes into an arena of mutable nodes (`graph.rs`), then freezes the
//! result.
//!
//! Containers are built in place (`EMPTY_LIST`, `MEMOIZE`, ..., `APPENDS`), so the memo and the stack hold
//! node ids. Nothing recursive runs while reading opcodes. How operands are decoded is `literals.rs`'s
//! business, what a call of a known global becomes (dicts, numpy arrays, torch storages ...)
//! `construct.rs`'s, and turning the arena into values `graph.rs`'s.

use std::collections::HashMap;

use super::graph::{freeze, CallKind, Id, Node};
use super::literals::{decimal_to_le, int_from_le, latin1, raw_unicode_escape, unquote_py2};
use super::Limits;
use crate::error::{Error, Result};
use crate::value::{GlobalName, Value};

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    op: u8,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    limits: Limits,
}

/// Runs the pickle in `data` and returns the value at `STOP`.
pub(crate) fn run(data: &[u8], limits: Limits) -> Result<Value> {
    let mut m = Machine {
        data,
        pos: 0,
        op_pos: 0,
        op: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
    };
    let root = m.execute()?;
    freeze(&m.nodes, root, limits)
}

impl<'a> Machine<'a> {
    fn malformed(&self, what: impl Into<String>) -> Error {
        Error::Malformed {
            offset: self.op_pos,
            opcode: self.op,
            what: what.into(),
        }
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return Err(Error::Truncated {
                offset: self.data.len(),
                opcode: self.op,
                needed: n - left,
            });
        }
        let n = n as usize;
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn line(&mut self) -> Result<&'a [u8]> {
        match self.data[self.pos..].iter().position(|&b| b == b'\n') {
            Some(n) => {
                let s = &self.data[self.pos..self.pos + n];
                self.pos += n + 1;
                Ok(s)
            }
            None => Err(Error::Truncated {
                offset: self.data.len(),
                opcode: self.op,
                needed: 1,
            }),
        }
    }

    fn text_line(&mut self) -> Result<&'a str> {
        let l = self.line()?;
        std::str::from_utf8(l).map_err(|_| self.malformed("text argument is not UTF-8"))
    }

    fn add(&mut self, node: Node) -> Result<Id> {
        if self.nodes.len() >= self.limits.max_nodes {
            return Err(Error::Limit {
                what: "number of objects",
                limit: self.limits.max_nodes,
            });
        }
        self.nodes.push(node);
        Ok((self.nodes.len() - 1) as Id)
    }

    fn push(&mut self, id: Id) -> Result<()> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(Error::Limit {
                what: "stack size",
                limit: self.limits.max_stack,
            });
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, node: Node) -> Result<()> {
        let id = self.add(node)?;
        self.push(id)
    }

    fn push_val(&mut self, v: Value) -> Result<()> {
        self.push_new(Node::Val(v))
    }

    fn frame_start(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id> {
        if self.stack.len() <= self.frame_start() {
            return Err(self.malformed("stack is empty"));
        }
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("stack is empty"))
    }

    fn top(&self) -> Result<Id> {
        if self.stack.len() <= self.frame_start() {
            return Err(self.malformed("stack is empty"));
        }
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.malformed("stack is empty"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed("no MARK on the stack"))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<()> {
        let top = self.top()?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(Error::Limit {
                what: "memo size",
                limit: self.limits.max_memo,
            });
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| self.malformed(format!("memo key {key} was never stored")))?;
        self.push(id)
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.nodes[id as usize] {
            Node::Val(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        let module = match module {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            m => m,
        };
        self.push_new(Node::Global(GlobalName {
            module: module.to_owned(),
            name: name.to_owned(),
        }))
    }

    fn append(&mut self, target: Id, items: Vec<Id>) -> Result<()> {
        let what = self.malformed("APPEND target is not a list");
        match &mut self.nodes[target as usize] {
            Node::List(v) | Node::Call { list_items: v, .. } => {
                v.extend(items);
                Ok(())
            }
            _ => Err(what),
        }
    }

    fn set_items(&mut self, target: Id, items: Vec<Id>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("odd number of items for SETITEMS"));
        }
        let what = self.malformed("SETITEM target is not a dict");
        let pairs = items.chunks_exact(2).map(|p| (p[0], p[1]));
        match &mut self.nodes[target as usize] {
            Node::Dict(v) | Node::Call { dict_items: v, .. } => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(what),
        }
    }

    fn int_from_le(&mut self, bytes: &[u8]) -> Result<()> {
        self.push_val(int_from_le(bytes))
    }

    fn int_from_text(&mut self, text: &str) -> Result<()> {
        let t = text.trim();
        let t = t.strip_suffix('L').unwrap_or(t);
        let v = match t.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => {
                let le =
                    decimal_to_le(t).ok_or_else(|| self.malformed(format!("bad integer {t:?}")))?;
                int_from_le(&le)
            }
        };
        self.push_val(v)
    }

    fn execute(&mut self) -> Result<Id> {
        loop {
            self.op_pos = self.pos;
            let op = *self.data.get(self.pos).ok_or(Error::Truncated {
                offset: self.pos,
                opcode: self.op,
                needed: 1,
            })?;
            self.op = op;
            self.pos += 1;
            match op {
                // --- framing and control
                0x80 => {
                    let [p] = self.fixed::<1>()?;
                    if p > 5 {
                        return Err(self.malformed(format!("unsupported protocol {p}")));
                    }
                }
                0x95 => {
                    // FRAME: the length is advisory; the frame's opcodes follow in line.
                    self.fixed::<8>()?;
                }
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                b'(' => {
                    if self.marks.len() >= self.limits.max_stack {
                        return Err(Error::Limit {
                            what: "stack size",
                            limit: self.limits.max_stack,
                        });
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    if self.stack.len() > self.frame_start() {
                        self.stack.pop();
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.push(t)?;
                }
                // --- memo
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let l = self.text_line()?;
                    let k = l
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed(format!("bad memo key {l:?}")))?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let [k] = self.fixed::<1>()?;
                    self.memo_put(u64::from(k))?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.fixed::<4>()?);
                    self.memo_put(u64::from(k))?;
                }
                b'g' => {
                    let l = self.text_line()?;
                    let k = l
                        .trim()
                        .parse()
                        .map_err(|_| self.malformed(format!("bad memo key {l:?}")))?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let [k] = self.fixed::<1>()?;
                    self.memo_get(u64::from(k))?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.fixed::<4>()?);
                    self.memo_get(u64::from(k))?;
                }
                // --- atoms
                b'N' => self.push_val(Value::None)?,
                0x88 => self.push_val(Value::Bool(true))?,
                0x89 => self.push_val(Value::Bool(false))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.fixed::<4>()?);
                    self.push_val(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let [v] = self.fixed::<1>()?;
                    self.push_val(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.fixed::<2>()?);
                    self.push_val(Value::Int(i64::from(v)))?;
                }
                0x8a => {
                    let [n] = self.fixed::<1>()?;
                    let b = self.take(u64::from(n))?;
                    self.int_from_le(b)?;
                }
                0x8b => {
                    let n = i32::from_le_bytes(self.fixed::<4>()?);
                    if n < 0 {
                        return Err(self.malformed("negative LONG4 length"));
                    }
                    let b = self.take(n as u64)?;
                    self.int_from_le(b)?;
                }
                b'I' => {
                    let l = self.text_line()?;
                    match l {
                        "00" => self.push_val(Value::Bool(false))?,
                        "01" => self.push_val(Value::Bool(true))?,
                        _ => self.int_from_text(l)?,
                    }
                }
                b'L' => {
                    let l = self.text_line()?;
                    self.int_from_text(l)?;
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.fixed::<8>()?);
                    self.push_val(Value::Float(v))?;
                }
                b'F' => {
                    let l = self.text_line()?;
                    let v = l
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| self.malformed(format!("bad float {l:?}")))?;
                    self.push_val(Value::Float(v))?;
                }
                // --- strings and bytes
                b'X' => {
                    let n = u32::from_le_bytes(self.fixed::<4>()?);
                    let b = self.take(u64::from(n))?;
                    self.push_utf8(b)?;
                }
                0x8c => {
                    let [n] = self.fixed::<1>()?;
                    let b = self.take(u64::from(n))?;
                    self.push_utf8(b)?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.fixed::<8>()?);
                    let b = self.take(n)?;
                    self.push_utf8(b)?;
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.fixed::<4>()?);
                    let b = self.take(u64::from(n))?;
                    self.push_val(Value::Bytes(b.into()))?;
                }
                b'C' => {
                    let [n] = self.fixed::<1>()?;
                    let b = self.take(u64::from(n))?;
                    self.push_val(Value::Bytes(b.into()))?;
                }
                0x8e | 0x96 => {
                    let n = u64::from_le_bytes(self.fixed::<8>()?);
                    let b = self.take(n)?;
                    self.push_val(Value::Bytes(b.into()))?;
                }
                b'T' => {
                    let n = i32::from_le_bytes(self.fixed::<4>()?);
                    if n < 0 {
                        return Err(self.malformed("negative BINSTRING length"));
                    }
                    let b = self.take(n as u64)?;
                    self.push_val(Value::Str(latin1(b).into()))?;
                }
                b'U' => {
                    let [n] = self.fixed::<1>()?;
                    let b = self.take(u64::from(n))?;
                    self.push_val(Value::Str(latin1(b).into()))?;
                }
                b'S' => {
                    let l = self.line()?;
                    let b = unquote_py2(l).ok_or_else(|| self.malformed("bad STRING literal"))?;
                    self.push_val(Value::Str(latin1(&b).into()))?;
                }
                b'V' => {
                    let l = self.line()?;
                    let s = raw_unicode_escape(l)
                        .ok_or_else(|| self.malformed("bad UNICODE literal"))?;
                    self.push_val(Value::Str(s.into()))?;
                }
                0x97 => {
                    return Err(
                        self.malformed("out-of-band buffers (NEXT_BUFFER) are not supported")
                    )
                }
                0x98 => {
                    self.top()?;
                }
                // --- containers
                b')' => self.push_new(Node::Tuple(Vec::new()))?,
                b']' => self.push_new(Node::List(Vec::new()))?,
                b'}' => self.push_new(Node::Dict(Vec::new()))?,
                0x8f => self.push_new(Node::Set(Vec::new()))?,
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < self.frame_start() + n {
                        return Err(self.malformed("stack is empty"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push_new(Node::Tuple(items))?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::Tuple(items))?;
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::List(items))?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if !items.len().is_multiple_of(2) {
                        return Err(self.malformed("odd number of items for DICT"));
                    }
                    self.push_new(Node::Dict(
                        items.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                    ))?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push_new(Node::Set(items))?;
                }
                b'a' => {
                    let v = self.pop()?;
                    let t = self.top()?;
                    self.append(t, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?;
                    self.append(t, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let t = self.top()?;
                    self.set_items(t, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let t = self.top()?;
                    self.set_items(t, items)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let t = self.top()?;
                    let what = self.malformed("ADDITEMS target is not a set");
                    match &mut self.nodes[t as usize] {
                        Node::Set(v) => v.extend(items),
                        _ => return Err(what),
                    }
                }
                // --- globals and objects (recorded, never executed)
                b'c' => {
                    let module = self.text_line()?;
                    let name = self.text_line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Some(module), Some(name)) = (self.str_of(module), self.str_of(name))
                    else {
                        return Err(self.malformed("STACK_GLOBAL needs two strings"));
                    };
                    let (module, name) = (module.to_owned(), name.to_owned());
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    self.push_call(func, args, CallKind::Reduce)?;
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push_call(cls, args, CallKind::NewObj)?;
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let both = self.add(Node::Tuple(vec![args, kwargs]))?;
                    self.push_call(cls, both, CallKind::NewObj)?;
                }
                b'i' => {
                    let module = self.text_line()?;
                    let name = self.text_line()?;
                    let items = self.pop_mark()?;
                    self.global(module, name)?;
                    let cls = self.pop()?;
                    let args = self.add(Node::Tuple(items))?;
                    self.push_call(cls, args, CallKind::NewObj)?;
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(self.malformed("OBJ without a class"));
                    }
                    let cls = items.remove(0);
                    let args = self.add(Node::Tuple(items))?;
                    self.push_call(cls, args, CallKind::NewObj)?;
                }
                b'b' => {
                    let state = self.pop()?;
                    let t = self.top()?;
                    let what = self.malformed("BUILD target is not an object");
                    match &mut self.nodes[t as usize] {
                        Node::Call { state: s, .. } => *s = Some(state),
                        _ => return Err(what),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push_new(Node::Persistent(pid))?;
                }
                b'P' => {
                    let l = self.line()?;
                    let pid = self.add(Node::Val(Value::Str(latin1(l).into())))?;
                    self.push_new(Node::Persistent(pid))?;
                }
                _ => {
                    return Err(Error::BadOpcode {
                        offset: self.op_pos,
                        opcode: op,
                    })
                }
            }
        }
    }

    fn push_utf8(&mut self, b: &[u8]) -> Result<()> {
        // Python's unpickler decodes with 'surrogatepass'; lone surrogates cannot be a Rust str.
        let s = std::str::from_utf8(b).map_err(|_| self.malformed("string is not valid UTF-8"))?;
        self.push_val(Value::Str(s.into()))
    }

    fn push_call(&mut self, func: Id, args: Id, kind: CallKind) -> Result<()> {
        self.push_new(Node::Call {
            func,
            args,
            kind,
            state: None,
            list_items: Vec::new(),
            dict_items: Vec::new(),
        })
    }
}
