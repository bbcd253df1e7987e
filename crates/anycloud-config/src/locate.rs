//! Finds the line a key path (`models[0].deployments[1].cloud`) sits on, so
//! validation errors can name file, line and key like parse errors do.

use toml_edit::{ImDocument, Item, Value};

pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The 1-based line of `path` in `text`, or of its nearest existing parent.
pub fn line_of_key(text: &str, path: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let segs = segments(path);
    let offset = walk_item(doc.as_item(), &segs, None);
    offset.map(|o| line_of_offset(text, o))
}

#[derive(Clone, Copy, Debug)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut idx) = match part.find('[') {
            Some(p) => (&part[..p], &part[p..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Seg::Key(key));
        }
        while let Some(close) = idx.find(']') {
            if let Ok(i) = idx[1..close].parse() {
                out.push(Seg::Index(i));
            }
            idx = &idx[close + 1..];
        }
    }
    out
}

/// Descends `segs` from `item`, returning the byte offset of the deepest
/// node found (`best` carries the parent's offset down).
fn walk_item(item: &Item, segs: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((first, rest)) = segs.split_first() else {
        return best;
    };
    match (first, item) {
        (Seg::Key(k), Item::Table(t)) => match t.get_key_value(k) {
            Some((key, child)) => walk_item(child, rest, key.span().map(|s| s.start).or(best)),
            None => best,
        },
        (Seg::Key(k), Item::Value(Value::InlineTable(t))) => match t.get_key_value(k) {
            Some((key, child)) => walk_item(child, rest, key.span().map(|s| s.start).or(best)),
            None => best,
        },
        (Seg::Index(i), Item::ArrayOfTables(a)) => match a.get(*i) {
            Some(t) => {
                let here = t.span().map(|s| s.start).or(best);
                walk_item_table(t, rest, here)
            }
            None => best,
        },
        (Seg::Index(i), Item::Value(Value::Array(a))) => match a.get(*i) {
            Some(v) => walk_value(v, rest, v.span().map(|s| s.start).or(best)),
            None => best,
        },
        _ => best,
    }
}

fn walk_item_table(t: &toml_edit::Table, segs: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((first, rest)) = segs.split_first() else {
        return best;
    };
    match first {
        Seg::Key(k) => match t.get_key_value(k) {
            Some((key, child)) => walk_item(child, rest, key.span().map(|s| s.start).or(best)),
            None => best,
        },
        Seg::Index(_) => best,
    }
}

fn walk_value(v: &Value, segs: &[Seg], best: Option<usize>) -> Option<usize> {
    let Some((first, rest)) = segs.split_first() else {
        return best;
    };
    match (first, v) {
        (Seg::Key(k), Value::InlineTable(t)) => match t.get_key_value(k) {
            Some((key, child)) => walk_item(child, rest, key.span().map(|s| s.start).or(best)),
            None => best,
        },
        (Seg::Index(i), Value::Array(a)) => match a.get(*i) {
            Some(c) => walk_value(c, rest, c.span().map(|s| s.start).or(best)),
            None => best,
        },
        _ => best,
    }
}
