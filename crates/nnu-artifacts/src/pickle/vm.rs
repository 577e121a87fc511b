//! The pickle machine: runs the opcodes into an arena of mutable nodes, then freezes the result.
//!
//! Containers are built in place (`EMPTY_LIST`, `MEMOIZE`, ..., `APPENDS`), so the memo and the stack hold
//! node ids; a memo entry fetched twice is the same node and freezes to the same `Rc`. Nothing recursive runs
//! while reading opcodes; freezing is recursive and bounded by [`Limits::max_depth`]. What a call of a known
//! global becomes (dicts, numpy arrays, torch storages ...) is `construct.rs`'s business.

use std::collections::HashMap;
use std::rc::Rc;

use super::construct::{bad, call, make_dict, persistent};
use super::value::{GlobalName, Value};
use super::Limits;
use crate::error::{Error, Result};

type Id = u32;

#[derive(Clone, Copy)]
enum CallKind {
    Reduce,
    NewObj,
}

enum Node {
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
    let mut f = Freezer {
        nodes: &m.nodes,
        done: vec![None; m.nodes.len()],
        busy: vec![false; m.nodes.len()],
        limits,
    };
    f.freeze(root, 0)
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

/// A Python int from little-endian two's complement bytes (`LONG1` / `LONG4`).
fn int_from_le(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let fill = if negative { 0xff } else { 0 };
    // Drop redundant sign-extension bytes, keeping one that carries the sign.
    let mut n = bytes.len();
    while n > 1 && bytes[n - 1] == fill && (bytes[n - 2] & 0x80 != 0) == negative {
        n -= 1;
    }
    if n <= 8 {
        let mut a = [fill; 8];
        a[..n].copy_from_slice(&bytes[..n]);
        Value::Int(i64::from_le_bytes(a))
    } else {
        Value::BigInt(bytes[..n].into())
    }
}

/// Decimal text (optional sign) to little-endian two's complement bytes.
fn decimal_to_le(text: &str) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 10_000 {
        return None;
    }
    // Magnitude as little-endian bytes, multiplied up digit by digit.
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    mag.push(0); // room for the sign bit
    if negative {
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = u16::from(!*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    Some(mag)
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// The body of a protocol-0 `STRING` literal (`'...'` or `"..."` with Python escapes) as bytes.
fn unquote_py2(l: &[u8]) -> Option<Vec<u8>> {
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    if l.len() < 2 || l[0] != l[l.len() - 1] || !(l[0] == b'\'' || l[0] == b'"') {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'x' => {
                let h = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < body.len() && (b'0'..=b'7').contains(&body[i]) {
                    v = v * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Some(out)
}

/// Decodes Python's `raw-unicode-escape` (latin-1 bytes plus `\uXXXX` / `\UXXXXXXXX`).
fn raw_unicode_escape(l: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' && i + 1 < l.len() && (l[i + 1] == b'u' || l[i + 1] == b'U') {
            let n = if l[i + 1] == b'u' { 4 } else { 8 };
            let h = std::str::from_utf8(l.get(i + 2..i + 2 + n)?).ok()?;
            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
            i += 2 + n;
        } else {
            out.push(char::from(l[i]));
            i += 1;
        }
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_decode() {
        assert!(matches!(int_from_le(&[0xff]), Value::Int(-1)));
        assert!(matches!(
            int_from_le(&[0x00, 0x80, 0x00]),
            Value::Int(32768)
        ));
        assert!(matches!(int_from_le(&[0x00, 0x80]), Value::Int(-32768)));
        assert!(matches!(int_from_le(&[0xff, 0x7f]), Value::Int(32767)));
        let big = [0u8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert!(matches!(int_from_le(&big), Value::BigInt(_)));
        assert_eq!(decimal_to_le("-1").unwrap(), vec![0xff, 0xff]);
        assert_eq!(decimal_to_le("256").unwrap(), vec![0, 1, 0]);
        assert!(matches!(
            int_from_le(&decimal_to_le("-129").unwrap()),
            Value::Int(-129)
        ));
        assert!(decimal_to_le("1x").is_none());
    }

    #[test]
    fn py2_literals_decode() {
        assert_eq!(unquote_py2(b"'a\\x00\\'b'").unwrap(), b"a\0'b");
        assert_eq!(unquote_py2(b"\"\\101\\n\"").unwrap(), b"A\n");
        assert!(unquote_py2(b"'abc").is_none());
        assert_eq!(
            raw_unicode_escape(b"caf\xe9 \\u20ac").unwrap(),
            "caf\u{e9} \u{20ac}"
        );
    }
}
