//! FHIRPath lexer and Pratt parser for the subset SQL-on-FHIR v2 uses (and a little more):
//! paths, indexers, functions, `%constants`, `$this`/`$index`, literals (strings, numbers,
//! booleans, `@` dates and times, `{}`), arithmetic, comparison, equality, `|`, `and`, `or`,
//! `xor`, `implies`, `in`, `contains`, `is`, `as`.

use crate::error::{Error, Result};

/// A parsed FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `{}`
    Empty,
    /// `true` / `false`
    Bool(bool),
    /// `'text'`
    Str(String),
    /// An integer literal.
    Int(i64),
    /// A decimal literal with its number of decimal places.
    Dec(f64, u32),
    /// `@2020-01-01`
    Date(String),
    /// `@2020-01-01T10:00`
    DateTime(String),
    /// `@T10:00`
    Time(String),
    /// `$this`
    This,
    /// `$index`
    Index,
    /// `$total`
    Total,
    /// `%name`
    Var(String),
    /// A member name, applied to the focus (`None`: the input of the whole expression).
    Member(Option<Box<Expr>>, String),
    /// A function call on the focus.
    Call(Option<Box<Expr>>, String, Vec<Expr>),
    /// `a[i]`
    Indexer(Box<Expr>, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `a is T` / `a as T`
    TypeOp(bool, Box<Expr>, String),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `div`
    IntDiv,
    /// `mod`
    Mod,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `&`
    Concat,
    /// `|`
    Union,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `~`
    Equiv,
    /// `!~`
    NotEquiv,
    /// `in`
    In,
    /// `contains`
    Contains,
    /// `and`
    And,
    /// `or`
    Or,
    /// `xor`
    Xor,
    /// `implies`
    Implies,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// A backtick-delimited identifier (never a keyword).
    Quoted(String),
    Str(String),
    Num(String),
    At(String),
    Var(String),
    Dollar(String),
    Sym(&'static str),
}

struct Lexer<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    at: usize,
}

fn parse_error(expression: &str, position: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        expression: expression.to_string(),
        position,
        reason: reason.into(),
    }
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            chars: src.char_indices().collect(),
            at: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).map(|(_, c)| *c)
    }

    fn offset(&self) -> usize {
        self.chars.get(self.at).map_or(self.src.len(), |(o, _)| *o)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        parse_error(self.src, self.offset(), reason)
    }

    fn tokens(mut self) -> Result<Vec<(usize, Tok)>> {
        let mut out = Vec::new();
        while let Some(c) = self.peek(0) {
            if c.is_whitespace() {
                self.at += 1;
                continue;
            }
            // Comments.
            if c == '/' && self.peek(1) == Some('/') {
                while self.peek(0).is_some_and(|c| c != '\n') {
                    self.at += 1;
                }
                continue;
            }
            if c == '/' && self.peek(1) == Some('*') {
                self.at += 2;
                while self.peek(0).is_some()
                    && !(self.peek(0) == Some('*') && self.peek(1) == Some('/'))
                {
                    self.at += 1;
                }
                self.at += 2;
                continue;
            }
            let start = self.offset();
            let tok = if c.is_ascii_alphabetic() || c == '_' {
                Tok::Ident(self.word())
            } else if c.is_ascii_digit() {
                Tok::Num(self.number())
            } else {
                match c {
                    '\'' => Tok::Str(self.quoted('\'')?),
                    '`' => Tok::Quoted(self.quoted('`')?),
                    '@' => {
                        self.at += 1;
                        let mut text = String::new();
                        while let Some(c) = self.peek(0) {
                            let fraction =
                                c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit());
                            if c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '+') || fraction
                            {
                                text.push(c);
                                self.at += 1;
                            } else {
                                break;
                            }
                        }
                        if text.is_empty() {
                            return Err(self.err("`@` must start a date, dateTime or time"));
                        }
                        Tok::At(text)
                    }
                    '%' => {
                        self.at += 1;
                        let name = match self.peek(0) {
                            Some('`') => self.quoted('`')?,
                            Some('\'') => self.quoted('\'')?,
                            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.word(),
                            _ => return Err(self.err("`%` must be followed by a name")),
                        };
                        Tok::Var(name)
                    }
                    '$' => {
                        self.at += 1;
                        Tok::Dollar(self.word())
                    }
                    _ => {
                        let two: String = [c, self.peek(1).unwrap_or(' ')].iter().collect();
                        let sym = match two.as_str() {
                            "<=" => Some("<="),
                            ">=" => Some(">="),
                            "!=" => Some("!="),
                            "!~" => Some("!~"),
                            _ => None,
                        };
                        if let Some(sym) = sym {
                            self.at += 2;
                            out.push((start, Tok::Sym(sym)));
                            continue;
                        }
                        let sym = match c {
                            '.' => ".",
                            '[' => "[",
                            ']' => "]",
                            '(' => "(",
                            ')' => ")",
                            '{' => "{",
                            '}' => "}",
                            ',' => ",",
                            '=' => "=",
                            '~' => "~",
                            '<' => "<",
                            '>' => ">",
                            '+' => "+",
                            '-' => "-",
                            '*' => "*",
                            '/' => "/",
                            '|' => "|",
                            '&' => "&",
                            _ => return Err(self.err(format!("unexpected character `{c}`"))),
                        };
                        self.at += 1;
                        Tok::Sym(sym)
                    }
                }
            };
            out.push((start, tok));
        }
        Ok(out)
    }

    fn word(&mut self) -> String {
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_ascii_alphanumeric() || c == '_' {
                text.push(c);
                self.at += 1;
            } else {
                break;
            }
        }
        text
    }

    fn number(&mut self) -> String {
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_ascii_digit() {
                text.push(c);
                self.at += 1;
            } else {
                break;
            }
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            text.push('.');
            self.at += 1;
            while let Some(c) = self.peek(0) {
                if c.is_ascii_digit() {
                    text.push(c);
                    self.at += 1;
                } else {
                    break;
                }
            }
        }
        text
    }

    fn quoted(&mut self, quote: char) -> Result<String> {
        self.at += 1;
        let mut text = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.err("unterminated string"));
            };
            self.at += 1;
            if c == quote {
                return Ok(text);
            }
            if c == '\\' {
                let Some(e) = self.peek(0) else {
                    return Err(self.err("unterminated escape"));
                };
                self.at += 1;
                match e {
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    'f' => text.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|i| self.peek(i)).collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.err("bad \\u escape"))?;
                        self.at += 4;
                        text.push(code);
                    }
                    other => text.push(other),
                }
            } else {
                text.push(c);
            }
        }
    }
}

/// Parses a FHIRPath expression.
pub fn parse(expression: &str) -> Result<Expr> {
    let tokens = Lexer::new(expression).tokens()?;
    let mut parser = Parser {
        src: expression,
        tokens,
        at: 0,
    };
    if parser.tokens.is_empty() {
        return Err(parse_error(expression, 0, "the expression is empty"));
    }
    let expr = parser.expr(0)?;
    if parser.at < parser.tokens.len() {
        return Err(parser.err("unexpected trailing input"));
    }
    Ok(expr)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<(usize, Tok)>,
    at: usize,
}

/// Binding power of an infix operator token (higher binds tighter).
fn infix(tok: &Tok) -> Option<(u8, BinOp)> {
    let op = match tok {
        Tok::Sym(s) => match *s {
            "*" => (10, BinOp::Mul),
            "/" => (10, BinOp::Div),
            "+" => (9, BinOp::Add),
            "-" => (9, BinOp::Sub),
            "&" => (9, BinOp::Concat),
            "|" => (7, BinOp::Union),
            "<" => (6, BinOp::Lt),
            "<=" => (6, BinOp::Le),
            ">" => (6, BinOp::Gt),
            ">=" => (6, BinOp::Ge),
            "=" => (5, BinOp::Eq),
            "!=" => (5, BinOp::Ne),
            "~" => (5, BinOp::Equiv),
            "!~" => (5, BinOp::NotEquiv),
            _ => return None,
        },
        Tok::Ident(w) => match w.as_str() {
            "div" => (10, BinOp::IntDiv),
            "mod" => (10, BinOp::Mod),
            "in" => (4, BinOp::In),
            "contains" => (4, BinOp::Contains),
            "and" => (3, BinOp::And),
            "or" => (2, BinOp::Or),
            "xor" => (2, BinOp::Xor),
            "implies" => (1, BinOp::Implies),
            _ => return None,
        },
        _ => return None,
    };
    Some(op)
}

impl Parser<'_> {
    fn err(&self, reason: impl Into<String>) -> Error {
        let position = self.tokens.get(self.at).map_or(self.src.len(), |(p, _)| *p);
        parse_error(self.src, position, reason)
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at).map(|(_, t)| t)
    }

    fn next(&mut self) -> Option<Tok> {
        let tok = self.tokens.get(self.at).map(|(_, t)| t.clone());
        self.at += 1;
        tok
    }

    fn expect(&mut self, sym: &'static str) -> Result<()> {
        if self.peek() == Some(&Tok::Sym(sym)) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected `{sym}`")))
        }
    }

    fn expr(&mut self, min: u8) -> Result<Expr> {
        let mut left = self.unary()?;
        while let Some(tok) = self.peek() {
            // `is` / `as` bind at level 8 and take a type name.
            if let Tok::Ident(w) = tok
                && (w == "is" || w == "as")
            {
                if 8 < min {
                    break;
                }
                let is = w == "is";
                self.at += 1;
                let ty = self.type_name()?;
                left = Expr::TypeOp(is, Box::new(left), ty);
                continue;
            }
            let Some((power, op)) = infix(tok) else { break };
            if power < min {
                break;
            }
            self.at += 1;
            let right = self.expr(power + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn type_name(&mut self) -> Result<String> {
        let mut name = match self.next() {
            Some(Tok::Ident(w)) | Some(Tok::Quoted(w)) => w,
            _ => return Err(self.err("expected a type name")),
        };
        while self.peek() == Some(&Tok::Sym(".")) {
            self.at += 1;
            match self.next() {
                Some(Tok::Ident(w)) | Some(Tok::Quoted(w)) => name = w,
                _ => return Err(self.err("expected a type name")),
            }
        }
        Ok(name)
    }

    fn unary(&mut self) -> Result<Expr> {
        match self.peek() {
            Some(Tok::Sym("-")) => {
                self.at += 1;
                let inner = self.unary()?;
                Ok(match inner {
                    Expr::Int(i) => Expr::Int(-i),
                    Expr::Dec(d, p) => Expr::Dec(-d, p),
                    other => Expr::Neg(Box::new(other)),
                })
            }
            Some(Tok::Sym("+")) => {
                self.at += 1;
                self.unary()
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr> {
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Some(Tok::Sym(".")) => {
                    self.at += 1;
                    let name = match self.next() {
                        Some(Tok::Ident(w)) | Some(Tok::Quoted(w)) => w,
                        _ => return Err(self.err("expected a name after `.`")),
                    };
                    if self.peek() == Some(&Tok::Sym("(")) {
                        let args = self.arguments()?;
                        expr = Expr::Call(Some(Box::new(expr)), name, args);
                    } else {
                        expr = Expr::Member(Some(Box::new(expr)), name);
                    }
                }
                Some(Tok::Sym("[")) => {
                    self.at += 1;
                    let index = self.expr(0)?;
                    self.expect("]")?;
                    expr = Expr::Indexer(Box::new(expr), Box::new(index));
                }
                _ => return Ok(expr),
            }
        }
    }

    fn arguments(&mut self) -> Result<Vec<Expr>> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.peek() == Some(&Tok::Sym(")")) {
            self.at += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.next() {
                Some(Tok::Sym(",")) => continue,
                Some(Tok::Sym(")")) => return Ok(args),
                _ => {
                    self.at -= 1;
                    return Err(self.err("expected `,` or `)` in the argument list"));
                }
            }
        }
    }

    fn term(&mut self) -> Result<Expr> {
        let Some(tok) = self.next() else {
            return Err(self.err("the expression ends too early"));
        };
        Ok(match tok {
            Tok::Sym("(") => {
                let inner = self.expr(0)?;
                self.expect(")")?;
                inner
            }
            Tok::Sym("{") => {
                self.expect("}")?;
                Expr::Empty
            }
            Tok::Str(s) => Expr::Str(s),
            Tok::Num(n) => match n.split_once('.') {
                Some((_, fraction)) => Expr::Dec(
                    n.parse().map_err(|_| self.err("bad number"))?,
                    fraction.len() as u32,
                ),
                None => Expr::Int(n.parse().map_err(|_| self.err("integer out of range"))?),
            },
            Tok::At(text) => {
                if let Some(time) = text.strip_prefix('T') {
                    Expr::Time(time.to_string())
                } else if text.contains('T') {
                    Expr::DateTime(text)
                } else {
                    Expr::Date(text)
                }
            }
            Tok::Var(name) => Expr::Var(name),
            Tok::Dollar(name) => match name.as_str() {
                "this" => Expr::This,
                "index" => Expr::Index,
                "total" => Expr::Total,
                _ => return Err(self.err(format!("unknown variable `${name}`"))),
            },
            Tok::Ident(w) if w == "true" => Expr::Bool(true),
            Tok::Ident(w) if w == "false" => Expr::Bool(false),
            Tok::Ident(w) | Tok::Quoted(w) => {
                if self.peek() == Some(&Tok::Sym("(")) {
                    let args = self.arguments()?;
                    Expr::Call(None, w, args)
                } else {
                    Expr::Member(None, w)
                }
            }
            Tok::Sym(s) => {
                self.at -= 1;
                return Err(self.err(format!("unexpected `{s}`")));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("a.b = 'x' and c.exists()").unwrap();
        let Expr::Binary(BinOp::And, left, _) = e else {
            panic!("and at the top")
        };
        assert!(matches!(*left, Expr::Binary(BinOp::Eq, _, _)));
        let e = parse("1 + 2 * 3").unwrap();
        assert!(matches!(e, Expr::Binary(BinOp::Add, _, _)));
        assert!(matches!(parse("-1.50").unwrap(), Expr::Dec(v, 2) if v == -1.5));
    }

    #[test]
    fn literals_and_indexers() {
        assert_eq!(parse("@2020-01").unwrap(), Expr::Date("2020-01".into()));
        assert_eq!(parse("@T10:00").unwrap(), Expr::Time("10:00".into()));
        assert!(
            matches!(parse("name[0].family").unwrap(), Expr::Member(Some(_), f) if f == "family")
        );
        assert!(matches!(parse("%`us-core`").unwrap(), Expr::Var(v) if v == "us-core"));
        assert!(
            matches!(parse("x is FHIR.Quantity").unwrap(), Expr::TypeOp(true, _, t) if t == "Quantity")
        );
    }

    #[test]
    fn errors() {
        for bad in ["@@", "", "a.", "a(", "(a", "'open", "a ]", "$foo"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
