//! Where a loader's items come from: the split lists of a phantom dataset folder (checked
//! against its manifest) or a folder of images paired with sibling folders of masks and
//! sketches by file stem.

use super::error::{LoaderError, Result};
use crate::layout::{self, Layout, Split};
use crate::manifest::{MANIFEST_KIND, Manifest};
use s2m_core::{CoreError, imageio};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One item of a source: its id (the file stem) and its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub id: String,
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    pub sketch: Option<PathBuf>,
}

/// Where items come from: a phantom dataset split or a folder of images.
#[derive(Debug, Clone)]
pub struct DatasetSource {
    pub(super) items: Vec<Item>,
    /// Human-readable name for errors ("split `train` of /data/x").
    pub(super) name: String,
    pub(super) manifest: Option<(PathBuf, Manifest)>,
    pub(super) has_masks: bool,
    pub(super) has_sketches: bool,
}

impl DatasetSource {
    /// The items of one split of a dataset folder written by the phantom generator.
    ///
    /// Requires `manifest.json` (written last, so its absence means an interrupted export) and
    /// `splits/<split>.txt`. Sketches come from `Layout::split_sketch` (the `freehand/` folder for
    /// the free-hand split). File existence is checked by [`Loader::new`](super::Loader::new) for the files it needs.
    pub fn phantom(root: impl AsRef<Path>, split: Split) -> Result<Self> {
        let layout = Layout::new(root.as_ref());
        let manifest = read_manifest(&layout)?;
        let split_path = layout.split(split);
        let ids =
            layout::read_split_list(&split_path).map_err(|e| CoreError::io(&split_path, e))?;
        let items = ids
            .into_iter()
            .map(|id| Item {
                image: layout.image(&id),
                mask: Some(layout.mask(&id)),
                sketch: Some(layout.split_sketch(split, &id)),
                id,
            })
            .collect();
        Ok(Self {
            items,
            name: format!("split `{}` of {}", split.name(), layout.root.display()),
            manifest: Some((layout.manifest(), manifest)),
            has_masks: true,
            has_sketches: true,
        })
    }

    /// The same items with their sketches taken from `dir/<id>.png` instead (for example the
    /// sketches that the SOLOv2 synthesizer S drew with `sketch2medi solov2 sketches`). Missing
    /// files are reported by [`Loader::new`](super::Loader::new) like any other missing sketch.
    pub fn with_sketches_from(mut self, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        for item in &mut self.items {
            item.sketch = Some(dir.join(format!("{}.png", item.id)));
        }
        self.has_sketches = true;
        self.name = format!("{} (sketches from {})", self.name, dir.display());
        self
    }

    /// The `*.png`, `*.jpg` and `*.jpeg` files of `images_dir` (sorted by file name; hidden
    /// files skipped), each with the file of the same stem in `masks_dir` and `sketches_dir` when
    /// those are given. A missing mask or sketch is an error naming the image and the expected
    /// file; so are two images with the same stem.
    pub fn image_folder(
        images_dir: impl AsRef<Path>,
        masks_dir: Option<&Path>,
        sketches_dir: Option<&Path>,
    ) -> Result<Self> {
        let images_dir = images_dir.as_ref();
        let images = images_by_stem(images_dir)?;
        let masks = masks_dir.map(images_by_stem).transpose()?;
        let sketches = sketches_dir.map(images_by_stem).transpose()?;
        // Finds the companion file of `id` or reports the file it expected.
        let companion = |files: &Option<BTreeMap<String, PathBuf>>,
                         dir: Option<&Path>,
                         kind: &'static str,
                         id: &str,
                         image: &Path|
         -> Result<Option<PathBuf>> {
            match (files, dir) {
                (Some(files), Some(dir)) => match files.get(id) {
                    Some(p) => Ok(Some(p.clone())),
                    None => Err(LoaderError::Missing {
                        kind,
                        image: image.to_path_buf(),
                        expected: dir.join(format!("{id}.png")),
                    }),
                },
                _ => Ok(None),
            }
        };
        let items = images
            .into_iter()
            .map(|(id, image)| {
                let mask = companion(&masks, masks_dir, "mask", &id, &image)?;
                let sketch = companion(&sketches, sketches_dir, "sketch", &id, &image)?;
                Ok(Item {
                    id,
                    image,
                    mask,
                    sketch,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            items,
            name: format!("image folder {}", images_dir.display()),
            manifest: None,
            has_masks: masks_dir.is_some(),
            has_sketches: sketches_dir.is_some(),
        })
    }

    /// The items, in source order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The manifest of a phantom dataset folder (`None` for an image folder).
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref().map(|(_, m)| m)
    }

    /// A human-readable name of the source, as used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Reads and checks `manifest.json` of a dataset folder.
fn read_manifest(layout: &Layout) -> Result<Manifest> {
    let path = layout.manifest();
    if !path.is_file() {
        return Err(LoaderError::NotADataset {
            root: layout.root.clone(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| LoaderError::Manifest {
        message: describe_json_error(&text, &e),
        path: path.clone(),
    })?;
    if manifest.kind != MANIFEST_KIND {
        return Err(LoaderError::Manifest {
            path,
            message: format!(
                "field `kind` is {:?}, expected {MANIFEST_KIND:?}",
                manifest.kind
            ),
        });
    }
    Ok(manifest)
}

/// A serde_json error with the field it happened in. serde names the field for missing fields
/// but only gives a line and column for type errors, so the nearest key before the error
/// position is added (good enough to point a reader at the right line of a manifest).
fn describe_json_error(text: &str, err: &serde_json::Error) -> String {
    let message = err.to_string();
    if message.contains("missing field") || err.line() == 0 {
        return message;
    }
    let line = text.lines().nth(err.line() - 1).unwrap_or("");
    let prefix: String = line.chars().take(err.column()).collect();
    // Earlier lines count too: a value may start on the line after its key.
    let before: String = text
        .lines()
        .take(err.line() - 1)
        .chain(std::iter::once(prefix.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    match last_key(&before) {
        Some(key) => format!("field `{key}`: {message}"),
        None => message,
    }
}

/// The last `"key":` in a JSON prefix.
fn last_key(prefix: &str) -> Option<String> {
    let bytes = prefix.as_bytes();
    let mut i = bytes.len();
    while i > 0 {
        i -= 1;
        if bytes[i] != b':' {
            continue;
        }
        let before = prefix[..i].trim_end();
        if let Some(inner) = before.strip_suffix('"')
            && let Some(start) = inner.rfind('"')
        {
            return Some(inner[start + 1..].to_string());
        }
    }
    None
}

/// The images of a folder by stem (see [`DatasetSource::image_folder`]).
fn images_by_stem(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut by_stem = BTreeMap::new();
    for path in imageio::list_images(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Hidden files are editor/OS litter (e.g. macOS `._x.png`) or unfinished atomic writes.
        if name.starts_with('.') {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(first) = by_stem.get(&stem) {
            return Err(LoaderError::DuplicateId {
                id: stem,
                first: PathBuf::clone(first),
                second: path,
            });
        }
        by_stem.insert(stem, path);
    }
    Ok(by_stem)
}
