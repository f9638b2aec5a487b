//! [`parse_atom`]: reads an Atom document (RFC 4287) with a real XML
//! parser (quick-xml) and checks what the RFC requires of it: the Atom
//! namespace on `feed`, and an `id`, `title` and `updated` (an RFC 3339
//! time) on the feed and on every entry. Tests assert on what it returns.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::Reader;

const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// An entry, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtomEntry {
    pub id: String,
    pub title: String,
    pub updated: String,
    pub summary: Option<String>,
    /// The content's text (for `type="html"`, the HTML, unescaped once).
    pub content: Option<String>,
    pub links: Vec<String>,
    pub categories: Vec<String>,
}

/// A feed, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtomFeed {
    pub id: String,
    pub title: String,
    pub updated: String,
    pub links: Vec<String>,
    pub entries: Vec<AtomEntry>,
}

fn attribute(start: &quick_xml::events::BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn check_time(what: &str, text: &str) -> Result<(), String> {
    // RFC 3339: date, `T`, time, then `Z` or an offset.
    let ok = text.len() >= 20
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[10] == b'T'
        && (text.ends_with('Z') || text[19..].contains(['+', '-']));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {text:?} is not an RFC 3339 time"))
    }
}

/// Keeps the `href` of a `link` and the `term` of a `category`.
fn record_link(
    start: &quick_xml::events::BytesStart<'_>,
    entry: Option<&mut AtomEntry>,
    feed: &mut AtomFeed,
) -> Result<(), String> {
    let (name, key) = match start.name().as_ref() {
        b"link" => ("link", "href"),
        b"category" => ("category", "term"),
        _ => return Ok(()),
    };
    let value = attribute(start, key).ok_or(format!("a {name} without {key}"))?;
    match (entry, name) {
        (Some(entry), "link") => entry.links.push(value),
        (Some(entry), _) => entry.categories.push(value),
        (None, "link") => feed.links.push(value),
        (None, _) => {}
    }
    Ok(())
}

/// Parses and checks an Atom feed; the error says what is wrong.
pub fn parse_atom(xml: &str) -> Result<AtomFeed, String> {
    let mut reader = Reader::from_str(xml);
    let mut feed = AtomFeed::default();
    let mut entry: Option<AtomEntry> = None;
    // Open elements, each with the text read inside it so far.
    let mut open: Vec<(String, String)> = Vec::new();
    let mut saw_feed = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| format!("not well-formed XML: {err}"))?;
        match event {
            Event::Empty(start) => record_link(&start, entry.as_mut(), &mut feed)?,
            Event::Start(start) => {
                record_link(&start, entry.as_mut(), &mut feed)?;
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                if name == "feed" {
                    if attribute(&start, "xmlns").as_deref() != Some(ATOM_NS) {
                        return Err("feed is not in the Atom namespace".to_owned());
                    }
                    saw_feed = true;
                } else if name == "entry" {
                    entry = Some(AtomEntry::default());
                }
                open.push((name, String::new()));
            }
            Event::Text(text) => {
                if let Some((_, buffer)) = open.last_mut() {
                    buffer.push_str(&text.decode().map_err(|err| err.to_string())?);
                }
            }
            Event::CData(text) => {
                if let Some((_, buffer)) = open.last_mut() {
                    buffer.push_str(&text.decode().map_err(|err| err.to_string())?);
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = reference.decode().map_err(|err| err.to_string())?;
                        resolve_predefined_entity(&name)
                            .ok_or(format!("unknown entity &{name};"))?
                            .to_owned()
                    }
                };
                if let Some((_, buffer)) = open.last_mut() {
                    buffer.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let (name, text) = open.pop().ok_or("an end tag without a start")?;
                match (&mut entry, name.as_str()) {
                    (Some(_), "entry") => {
                        let done = entry.take().expect("inside an entry");
                        if done.id.is_empty() || done.title.is_empty() {
                            return Err(format!("an entry without id or title: {done:?}"));
                        }
                        check_time("entry updated", &done.updated)?;
                        feed.entries.push(done);
                    }
                    (Some(entry), "id") => entry.id = text,
                    (Some(entry), "title") => entry.title = text,
                    (Some(entry), "updated") => entry.updated = text,
                    (Some(entry), "summary") => entry.summary = Some(text),
                    (Some(entry), "content") => entry.content = Some(text),
                    (None, "id") => feed.id = text,
                    (None, "title") => feed.title = text,
                    (None, "updated") => feed.updated = text,
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_feed {
        return Err("no feed element".to_owned());
    }
    if feed.id.is_empty() || feed.title.is_empty() {
        return Err("the feed has no id or title".to_owned());
    }
    check_time("feed updated", &feed.updated)?;
    Ok(feed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_feed_parses_and_a_broken_one_does_not() {
        let xml = r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>A &amp; B</title>
<updated>2027-01-15T08:00:00Z</updated><link rel="self" href="https://x/f"/>
<entry><id>urn:e</id><title>&lt;e&gt;</title><updated>2027-01-15T08:00:00Z</updated>
<category term="changed"/><content type="html">&lt;p&gt;hi&lt;/p&gt;</content></entry></feed>"#;
        let feed = parse_atom(xml).unwrap();
        assert_eq!(feed.title, "A & B");
        assert_eq!(feed.links, ["https://x/f"]);
        assert_eq!(feed.entries[0].title, "<e>");
        assert_eq!(feed.entries[0].categories, ["changed"]);
        assert_eq!(feed.entries[0].content.as_deref(), Some("<p>hi</p>"));
        assert!(parse_atom("<feed><id>x</id>").is_err());
        assert!(parse_atom(&xml.replace("2005/Atom", "2005/Other")).is_err());
        assert!(parse_atom(&xml.replace("2027-01-15T08:00:00Z", "yesterday")).is_err());
    }
}
