//! Reading a children-in-need census extract (the DfE CIN census XML) as a stream: the header's
//! local authority code, then one child at a time, so a large county's 100 MB extract is read
//! in bounded memory. Of each child only the elements cpwatch's rules need are kept, with the
//! line they ended on and their place (`CINdetails[1]/Section47[2]/DateOfInitialCPC`); the rest
//! (UPN, former UPN, ethnicity, disabilities, gender, …) is read past and never held.

use quick_xml::events::Event as Xml;
use quick_xml::Reader;
use std::cell::Cell;
use std::io::BufRead;
use std::rc::Rc;

/// The elements kept from a child (all dates, flags and the child's id): everything else in
/// the file is skipped as it is read.
const KEPT: &[&str] = &[
    "LAchildID",
    "PersonBirthDate",
    "ExpectedPersonBirthDate",
    "CINreferralDate",
    "CINclosureDate",
    "DateOfInitialCPC",
    "ReferralNFA",
    "AssessmentActualStartDate",
    "AssessmentAuthorisationDate",
    "CINPlanStartDate",
    "CINPlanEndDate",
    "S47ActualStartDate",
    "InitialCPCtarget",
    "ICPCnotRequired",
    "CPPstartDate",
    "CPPendDate",
    "CPPreviewDate",
];

/// The elements the schema lets repeat within their parent.
const REPEATABLE: &[&str] = &[
    "CINdetails",
    "Assessments",
    "CINPlanDates",
    "Section47",
    "ChildProtectionPlans",
    "CPPreviewDate",
];

/// The most bytes one piece of markup or text may take (a census value is a few characters;
/// an endless text, such as a file of zeros, is refused instead of filling memory).
const MAX_EVENT_BYTES: u64 = 1024 * 1024;

/// A kept element of a child: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// From the child down: `[("CINdetails", 1), ("Section47", 2), ("DateOfInitialCPC", 1)]`.
    pub path: Vec<(String, usize)>,
    pub text: String,
    pub line: u64,
}

impl Leaf {
    /// `CINdetails[1]/Section47[2]/DateOfInitialCPC`: an index on the elements the schema lets
    /// repeat.
    pub fn place(&self) -> String {
        let parts: Vec<String> = self
            .path
            .iter()
            .map(|(name, n)| {
                if REPEATABLE.contains(&name.as_str()) {
                    format!("{name}[{n}]")
                } else {
                    name.clone()
                }
            })
            .collect();
        parts.join("/")
    }
    pub fn name(&self) -> &str {
        self.path.last().map_or("", |p| p.0.as_str())
    }
}

/// One `<Child>`: its kept elements, in file order, and the line it started on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildLeaves {
    pub line: u64,
    pub leaves: Vec<Leaf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CensusError {
    #[error("line {line}: not well-formed XML: {message}")]
    Xml { line: u64, message: String },
    #[error("line {line}: {message}")]
    Shape { line: u64, message: String },
    #[error("cannot read the file: {0}")]
    Io(std::io::Error),
}

/// Counts the lines consumed, and the bytes since the last piece of markup (to cap them).
struct Counting<R> {
    inner: R,
    lines: Rc<Cell<u64>>,
    since_mark: Rc<Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.since_mark.get() > MAX_EVENT_BYTES {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "more than {} KB without markup: this is not a census extract",
                    MAX_EVENT_BYTES / 1024
                ),
            ));
        }
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let n = buf[..amt.min(buf.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.lines.set(self.lines.get() + n as u64);
        }
        self.since_mark.set(self.since_mark.get() + amt as u64);
        self.inner.consume(amt)
    }
}

/// A census extract being read.
pub struct CensusReader<R: BufRead> {
    xml: Reader<Counting<R>>,
    lines: Rc<Cell<u64>>,
    since_mark: Rc<Cell<u64>>,
    buf: Vec<u8>,
    /// The open elements above the current position, from the root.
    stack: Vec<String>,
    in_children: bool,
}

impl<R: BufRead> CensusReader<R> {
    pub fn new(inner: R) -> Self {
        let lines = Rc::new(Cell::new(0));
        let since_mark = Rc::new(Cell::new(0));
        let counting = Counting {
            inner,
            lines: lines.clone(),
            since_mark: since_mark.clone(),
        };
        let mut xml = Reader::from_reader(counting);
        xml.config_mut().trim_text(true);
        CensusReader {
            xml,
            lines,
            since_mark,
            buf: Vec::new(),
            stack: Vec::new(),
            in_children: false,
        }
    }

    /// The line the reader is on.
    pub fn line(&self) -> u64 {
        self.lines.get() + 1
    }

    fn next(&mut self) -> Result<Xml<'static>, CensusError> {
        self.buf.clear();
        self.since_mark.set(0);
        let line = self.line();
        match self.xml.read_event_into(&mut self.buf) {
            Ok(e) => Ok(e.into_owned()),
            Err(quick_xml::Error::Io(e)) => Err(CensusError::Shape {
                line,
                message: e.to_string(),
            }),
            Err(e) => Err(CensusError::Xml {
                line: self.line(),
                message: e.to_string(),
            }),
        }
    }

    /// Read up to the first child: the header's local authority codes (`Header/Source/LEA`).
    pub fn header(&mut self) -> Result<Vec<String>, CensusError> {
        let mut codes = Vec::new();
        let mut text = String::new();
        loop {
            match self.next()? {
                Xml::Start(s) => {
                    let name = s.local_name().as_ref().to_owned();
                    if self.stack.is_empty() && name != "Message" {
                        return Err(self.shape(format!(
                            "the root element is <{name}>, not <Message>: this is not a CIN census extract"
                        )));
                    }
                    self.stack.push(name.clone());
                    text.clear();
                    if name == "Children" {
                        self.in_children = true;
                        return Ok(codes);
                    }
                }
                Xml::Text(t) => text.push_str(&t.xml10_content()),
                Xml::GeneralRef(r) => text.push_str(&resolve(&r)),
                Xml::End(_) => {
                    if self.stack.last().is_some_and(|n| n == "LEA")
                        && self.stack.iter().any(|n| n == "Source")
                    {
                        codes.push(text.trim().to_owned());
                    }
                    self.stack.pop();
                    text.clear();
                }
                Xml::Eof => return Err(self.shape("the file ends before <Children>".into())),
                _ => {}
            }
        }
    }

    fn shape(&self, message: String) -> CensusError {
        CensusError::Shape {
            line: self.line(),
            message,
        }
    }

    /// The next `<Child>`, or None after the last.
    pub fn next_child(&mut self) -> Result<Option<ChildLeaves>, CensusError> {
        if !self.in_children {
            return Ok(None);
        }
        loop {
            match self.next()? {
                Xml::Start(s) if s.local_name().as_ref() == "Child" => {
                    let line = self.line();
                    return self.child(line).map(Some);
                }
                Xml::Start(s) => {
                    let name = s.local_name().as_ref().to_owned();
                    return Err(self.shape(format!("<{name}> inside <Children>: expected <Child>")));
                }
                Xml::End(_) => {
                    self.in_children = false;
                    return Ok(None);
                }
                Xml::Eof => return Err(self.shape("the file ends inside <Children>".into())),
                _ => {}
            }
        }
    }

    /// The rest of a `<Child>` element, its kept leaves.
    fn child(&mut self, line: u64) -> Result<ChildLeaves, CensusError> {
        let mut out = ChildLeaves {
            line,
            leaves: Vec::new(),
        };
        // The open elements below <Child>, and per level how often each name was seen.
        let mut path: Vec<(String, usize)> = Vec::new();
        let mut seen: Vec<Vec<(String, usize)>> = vec![Vec::new()];
        let mut text = String::new();
        loop {
            match self.next()? {
                Xml::Start(s) => {
                    let name = s.local_name().as_ref().to_owned();
                    let level = seen
                        .last_mut()
                        .ok_or_else(|| self.shape("nesting".into()))?;
                    let n = match level.iter_mut().find(|(k, _)| *k == name) {
                        Some((_, n)) => {
                            *n += 1;
                            *n
                        }
                        None => {
                            level.push((name.clone(), 1));
                            1
                        }
                    };
                    path.push((name, n));
                    seen.push(Vec::new());
                    text.clear();
                }
                Xml::Empty(_) => {}
                Xml::Text(t) if keeping(&path) => text.push_str(&t.xml10_content()),
                Xml::CData(t) if keeping(&path) => text.push_str(&t.into_inner()),
                Xml::GeneralRef(r) if keeping(&path) => text.push_str(&resolve(&r)),
                Xml::End(_) => {
                    let Some((name, _)) = path.last() else {
                        return Ok(out); // </Child>
                    };
                    if KEPT.contains(&name.as_str()) {
                        out.leaves.push(Leaf {
                            path: path.clone(),
                            text: std::mem::take(&mut text).trim().to_owned(),
                            line: self.line(),
                        });
                    }
                    path.pop();
                    seen.pop();
                    text.clear();
                }
                Xml::Eof => return Err(self.shape("the file ends inside a <Child>".into())),
                _ => {}
            }
        }
    }
}

/// Whether the text at `path` is kept (the innermost element is one of [`KEPT`]).
fn keeping(path: &[(String, usize)]) -> bool {
    path.last().is_some_and(|(n, _)| KEPT.contains(&n.as_str()))
}

/// A predefined entity or character reference, resolved (an unknown one stays as written).
fn resolve(r: &quick_xml::events::BytesRef) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    let name: String = r.as_ref().to_owned();
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(s) => s.to_owned(),
        None => format!("&{name};"),
    }
}
