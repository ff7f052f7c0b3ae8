//! [`LayerStack`]: the merged view of an image's layer indexes with overlay semantics (upper
//! entries win, whiteouts hide, opaque directories cut off the layers below, a non-directory
//! and a directory hide each other, implicit directories take the lower layer's metadata).
//! The rules are spelled out in `FORMAT.md` ("Merged view").

use std::fmt;

use super::IndexError;
use super::entry::Entry;
use super::format::flag;
use super::reader::{LayerIndex, trim};

/// A directory that contributes to a merged directory: a layer position and the directory's
/// record in that layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Contrib {
    layer: u32,
    dir: u32,
}

/// Contributor lists up to this many layers live on the stack during `get`.
const INLINE: usize = 16;

/// The layers of an image, bottom to top, seen as one tree.
///
/// Lookups walk the path one component at a time, with one binary search per contributing
/// layer, and allocate nothing for stacks of up to 16 layers. They fail only on an index
/// that breaks the format (see [`LayerIndex`]); [`verify`](Self::verify) rules that out up
/// front.
///
/// ```
/// use microsandbox_image::index::{EntryMeta, IndexBuilder, LayerIndex, LayerStack};
///
/// let dir = EntryMeta { mode: 0o040755, ..Default::default() };
/// let file = EntryMeta { mode: 0o100644, ..Default::default() };
/// let mut base = IndexBuilder::new();
/// base.add(b"opt", dir.clone())?;
/// base.add(b"opt/old", file.clone())?;
/// let mut top = IndexBuilder::new();
/// top.add(b"opt", dir)?;
/// top.add(b"opt/.wh..wh..opq", file.clone())?; // opaque: hides base's opt/old
/// top.add(b"opt/new", file)?;
///
/// let stack = LayerStack::new(vec![
///     LayerIndex::from_bytes(base.finish()?)?,
///     LayerIndex::from_bytes(top.finish()?)?,
/// ]);
/// let paths = stack.walk().map(|r| r.map(|(path, _)| path)).collect::<Result<Vec<_>, _>>()?;
/// assert_eq!(paths, [&b""[..], b"opt", b"opt/new"]);
/// # Ok::<(), microsandbox_image::index::IndexError>(())
/// ```
#[derive(Clone)]
pub struct LayerStack {
    layers: Vec<LayerIndex>,
    /// Leases that keep the layers' trees from being collected while the stack lives (set
    /// when the stack comes from a [`PullResult`](crate::PullResult)).
    holds: Vec<std::sync::Arc<crate::cache::LayerLease>>,
}

impl LayerStack {
    /// A stack of `layers`, bottom (the image's first layer) to top.
    pub fn new(layers: Vec<LayerIndex>) -> Self {
        LayerStack {
            layers,
            holds: Vec::new(),
        }
    }

    /// The same stack, also holding `leases` for as long as it (or a clone) lives.
    pub fn holding(mut self, leases: Vec<std::sync::Arc<crate::cache::LayerLease>>) -> Self {
        self.holds.extend(leases);
        self
    }

    /// The layers, bottom to top; [`Entry::layer`] indexes this slice.
    pub fn layers(&self) -> &[LayerIndex] {
        &self.layers
    }

    /// [`LayerIndex::verify`] every layer, so that no later lookup can fail.
    pub fn verify(&self) -> Result<(), IndexError> {
        self.layers.iter().try_for_each(LayerIndex::verify)
    }

    /// The visible entry at `path` (`usr/bin/sh`; empty for the root), or `None` if it does
    /// not exist, is whited out or hidden, or a parent is not a directory.
    ///
    /// For a directory whose top entry is implicit, the returned entry is the lower layer's
    /// directory that gives it its metadata (see `FORMAT.md`).
    pub fn get(&self, path: &[u8]) -> Result<Option<Entry<'_>>, IndexError> {
        let path = trim(path);
        let mut inline = [Contrib::default(); INLINE];
        let mut heap = Vec::new();
        let buf: &mut [Contrib] = if self.layers.len() <= INLINE {
            &mut inline[..]
        } else {
            heap.resize(self.layers.len(), Contrib::default());
            &mut heap[..]
        };
        let mut len = self.roots(buf);
        if path.is_empty() {
            return Ok(self.root_entry());
        }
        let mut comps = path.split(|&c| c == b'/');
        let mut name = comps.next().unwrap_or_default();
        for next in comps {
            match self.descend(buf, len, name)? {
                Some(n) => len = n,
                None => return Ok(None),
            }
            name = next;
        }
        self.pick(buf.get(..len).unwrap_or_default(), name)
    }

    /// The visible entries of directory `path`, sorted by name, whiteouts removed; `Ok(None)`
    /// if `path` is not a visible directory.
    pub fn read_dir(&self, path: &[u8]) -> Result<Option<Vec<Entry<'_>>>, IndexError> {
        let Some(contribs) = self.resolve_dir(trim(path))? else {
            return Ok(None);
        };
        Ok(Some(
            self.merge(&contribs)?.into_iter().map(|(e, _)| e).collect(),
        ))
    }

    /// Every visible path with its entry, in pre-order: the root (empty path) first, each
    /// directory before its contents, siblings sorted by name. After an error the iterator
    /// ends.
    pub fn walk(&self) -> impl Iterator<Item = Result<(Vec<u8>, Entry<'_>), IndexError>> + '_ {
        let root = self.root_entry();
        let mut contribs = vec![Contrib::default(); self.layers.len()];
        let n = self.roots(&mut contribs);
        contribs.truncate(n);
        Walk {
            stack: self,
            first: root,
            frames: Vec::new(),
            pending: root.map(|_| (Vec::new(), contribs)),
        }
    }

    /// Fill `buf` with the layers' roots, top to bottom, down to the first opaque one.
    fn roots(&self, buf: &mut [Contrib]) -> usize {
        let mut n = 0;
        for (layer, idx) in self.layers.iter().enumerate().rev() {
            let Some(slot) = buf.get_mut(n) else { break };
            *slot = Contrib {
                layer: layer as u32,
                dir: 0,
            };
            n += 1;
            if idx.key_flags(0) & flag::OPAQUE != 0 {
                break;
            }
        }
        n
    }

    /// The merged root: the top root, or the nearest non-implicit one below it.
    fn root_entry(&self) -> Option<Entry<'_>> {
        let mut roots = self
            .layers
            .iter()
            .enumerate()
            .rev()
            .map(|(l, idx)| Entry::new(idx, 0, l as u32));
        let top = roots.next()?;
        if !top.is_implicit() {
            return Some(top);
        }
        Some(roots.find(|e| !e.is_implicit()).unwrap_or(top))
    }

    /// Replace the contributors of a directory (`buf[..len]`) by those of its child `name`;
    /// `None` if the child is missing, whited out or not a directory.
    fn descend(
        &self,
        buf: &mut [Contrib],
        len: usize,
        name: &[u8],
    ) -> Result<Option<usize>, IndexError> {
        let mut out = 0;
        for i in 0..len {
            let Some(c) = buf.get(i).copied() else { break };
            let Some(idx) = self.layers.get(c.layer as usize) else {
                continue;
            };
            let Some(id) = idx.find_child(c.dir, name)? else {
                continue;
            };
            let flags = idx.key_flags(id);
            let e = Entry::new(idx, id, c.layer);
            if flags & flag::WHITEOUT != 0 || !e.is_dir() {
                break;
            }
            let Some(slot) = buf.get_mut(out) else { break };
            *slot = Contrib {
                layer: c.layer,
                dir: e.dir_index(),
            };
            out += 1;
            if flags & flag::OPAQUE != 0 {
                break;
            }
        }
        Ok((out > 0).then_some(out))
    }

    /// The visible entry `name` among the contributors `dirs`.
    fn pick<'a>(&'a self, dirs: &[Contrib], name: &[u8]) -> Result<Option<Entry<'a>>, IndexError> {
        let mut top: Option<Entry<'a>> = None;
        for c in dirs {
            let Some(idx) = self.layers.get(c.layer as usize) else {
                continue;
            };
            let Some(id) = idx.find_child(c.dir, name)? else {
                continue;
            };
            let e = Entry::new(idx, id, c.layer);
            match top {
                None if e.is_whiteout() => return Ok(None),
                None if !e.is_dir() || !e.is_implicit() => return Ok(Some(e)),
                None => top = Some(e),
                // Below an implicit directory: look for its real metadata.
                Some(_) if e.is_whiteout() || !e.is_dir() => break,
                Some(_) if !e.is_implicit() => return Ok(Some(e)),
                Some(_) => {}
            }
        }
        Ok(top)
    }

    /// Contributors of the directory at `path`.
    fn resolve_dir(&self, path: &[u8]) -> Result<Option<Vec<Contrib>>, IndexError> {
        let mut buf = vec![Contrib::default(); self.layers.len()];
        let mut len = self.roots(&mut buf);
        if self.layers.is_empty() {
            return Ok(None);
        }
        if !path.is_empty() {
            for name in path.split(|&c| c == b'/') {
                match self.descend(&mut buf, len, name)? {
                    Some(n) => len = n,
                    None => return Ok(None),
                }
            }
        }
        buf.truncate(len);
        Ok(Some(buf))
    }

    /// Merge the contributors' entries by name: for each visible name, its entry and, for a
    /// directory, its own contributors.
    fn merge(&self, dirs: &[Contrib]) -> Result<Vec<(Entry<'_>, Vec<Contrib>)>, IndexError> {
        let mut cursors: Vec<Cursor<'_>> = Vec::with_capacity(dirs.len());
        for c in dirs {
            let Some(idx) = self.layers.get(c.layer as usize) else {
                continue;
            };
            let r = idx.group(c.dir)?;
            cursors.push(Cursor {
                idx,
                layer: c.layer,
                next: r.start,
                end: r.end,
            });
        }
        let capacity = cursors.iter().map(|c| (c.end - c.next) as usize).max();
        let mut out = Vec::with_capacity(capacity.unwrap_or(0));
        while let Some(name) = cursors.iter().filter_map(Cursor::name).min() {
            let mut top: Option<Entry<'_>> = None;
            let mut meta: Option<Entry<'_>> = None;
            let mut children = Vec::new();
            let (mut hidden, mut stop, mut open) = (false, false, true);
            for cur in cursors.iter_mut() {
                if cur.name() != Some(name) {
                    continue;
                }
                let e = Entry::new(cur.idx, cur.next, cur.layer);
                cur.next += 1;
                if stop {
                    continue;
                }
                if e.is_whiteout() || !e.is_dir() {
                    // Hides everything below; at the top, it is the answer (or hides it).
                    stop = true;
                    if top.is_none() {
                        hidden = e.is_whiteout();
                        top = Some(e);
                    }
                    continue;
                }
                if top.is_none() {
                    top = Some(e);
                }
                if meta.is_none() && !e.is_implicit() {
                    meta = Some(e);
                }
                if open {
                    children.push(Contrib {
                        layer: cur.layer,
                        dir: e.dir_index(),
                    });
                    open = !e.is_opaque();
                }
            }
            if let Some(top) = top.filter(|_| !hidden) {
                let entry = if top.is_dir() {
                    meta.unwrap_or(top)
                } else {
                    top
                };
                out.push((entry, children));
            }
        }
        Ok(out)
    }
}

/// A position in one contributor's sorted entries during a merge.
struct Cursor<'a> {
    idx: &'a LayerIndex,
    layer: u32,
    next: u32,
    end: u32,
}

impl<'a> Cursor<'a> {
    fn name(&self) -> Option<&'a [u8]> {
        (self.next < self.end).then(|| self.idx.key_name(self.next))
    }
}

/// One directory being listed by [`LayerStack::walk`].
struct Frame<'a> {
    prefix: Vec<u8>,
    items: std::vec::IntoIter<(Entry<'a>, Vec<Contrib>)>,
}

/// Pre-order iterator over a [`LayerStack`].
struct Walk<'a> {
    stack: &'a LayerStack,
    first: Option<Entry<'a>>,
    frames: Vec<Frame<'a>>,
    /// A directory listed next: its path and contributors.
    pending: Option<(Vec<u8>, Vec<Contrib>)>,
}

impl<'a> Iterator for Walk<'a> {
    type Item = Result<(Vec<u8>, Entry<'a>), IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.first.take() {
            return Some(Ok((Vec::new(), root)));
        }
        if let Some((prefix, contribs)) = self.pending.take() {
            match self.stack.merge(&contribs) {
                Ok(items) => self.frames.push(Frame {
                    prefix,
                    items: items.into_iter(),
                }),
                Err(e) => {
                    self.frames.clear();
                    return Some(Err(e));
                }
            }
        }
        loop {
            let frame = self.frames.last_mut()?;
            let Some((entry, children)) = frame.items.next() else {
                self.frames.pop();
                continue;
            };
            let mut path = frame.prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(entry.name());
            if !children.is_empty() {
                self.pending = Some((path.clone(), children));
            }
            return Some(Ok((path, entry)));
        }
    }
}

impl fmt::Debug for LayerStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.layers).finish()
    }
}
