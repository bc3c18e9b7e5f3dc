//! The one lookup of a field in a JSON line by its dotted path (`geo.country_code`), for the
//! partition keys of the Kinesis output and the field filters of the live tail, so both read the
//! same text for the same value: a string unescaped, a number, boolean or `null` as written in
//! the line, an object or array as its JSON text.
//!
//! A byte scanner, not a parser: it skips the values it does not need without decoding or
//! validating them and borrows the value from the line when it has no escapes, so the common
//! case allocates nothing. It stops at the value; a line broken after it still yields it. Of
//! duplicate keys, the first counts.

use std::borrow::Cow;

/// A value found at a path.
#[derive(Debug, PartialEq, Eq)]
pub struct Found<'a> {
    /// The value's text, as described at the top of this file.
    pub text: Cow<'a, str>,
    /// The value is `null`.
    pub null: bool,
}

/// The value at `path` in a JSON object line; `None` when the line is not a JSON object or
/// lacks the path.
pub fn lookup<'a>(line: &'a [u8], path: &[String]) -> Option<Found<'a>> {
    let mut s = Scan { b: line, i: 0 };
    s.find_path(path)
}

/// The value at `path`, as a key: [`lookup`]'s text, `None` also when the value is `null` or
/// the empty string.
pub fn field_value<'a>(line: &'a [u8], path: &[String]) -> Option<Cow<'a, str>> {
    let found = lookup(line, path)?;
    (!found.null && !found.text.is_empty()).then_some(found.text)
}

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// At the value of an object whose keys are searched for `path`.
    fn find_path(&mut self, path: &[String]) -> Option<Found<'a>> {
        let (want, rest) = path.split_first()?;
        self.eat(b'{')?;
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            return None;
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.eat(b':')?;
            self.ws();
            if key == want.as_str() {
                return if rest.is_empty() {
                    self.value()
                } else {
                    self.find_path(rest)
                };
            }
            self.skip_value()?;
            self.ws();
            match self.b.get(self.i)? {
                b',' => self.i += 1,
                _ => return None,
            }
        }
    }

    /// A string at `i` (after its opening quote is checked), unescaped.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = self.string_end(start)?;
        self.i = end + 1;
        let raw = &self.b[start..end];
        if !raw.contains(&b'\\') {
            return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
        }
        // Rare: let serde_json decode the escapes of this one string.
        serde_json::from_slice::<String>(&self.b[start - 1..=end])
            .ok()
            .map(Cow::Owned)
    }

    /// The index of the quote that closes a string whose content starts at `from`.
    fn string_end(&self, from: usize) -> Option<usize> {
        let mut j = from;
        loop {
            let k = memchr::memchr2(b'"', b'\\', &self.b[j..])? + j;
            if self.b[k] == b'"' {
                return Some(k);
            }
            j = k + 2;
            if j > self.b.len() {
                return None;
            }
        }
    }

    /// The value at `i`.
    fn value(&mut self) -> Option<Found<'a>> {
        let b = *self.b.get(self.i)?;
        if b == b'"' {
            return self.string().map(|text| Found { text, null: false });
        }
        let start = self.i;
        self.skip_value()?;
        let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
        Some(Found {
            null: b == b'n',
            text: Cow::Borrowed(text),
        })
    }

    /// Moves past the value at `i`.
    fn skip_value(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => {
                self.i = self.string_end(self.i + 1)? + 1;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&c) = self.b.get(self.i) {
                    match c {
                        b'"' => {
                            self.i = self.string_end(self.i + 1)?;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                return None;
            }
            _ => {
                let start = self.i;
                while let Some(&c) = self.b.get(self.i) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests;
