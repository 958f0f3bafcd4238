//! Fetching a pipeline from the Hugging Face hub (feature `hub`).
//!
//! A hub repo holds the same layout as a local weights folder: `pipeline.json` at some
//! subfolder and the files it names, at paths relative to it (`..` may step up within the repo).
//! Files are downloaded into (or found in) the standard hub cache (`$HF_HOME/hub`, default
//! `~/.cache/huggingface/hub`), whose snapshot folder mirrors the repo, so the downloaded
//! `pipeline.json` loads like a local folder. Files already in the cache are used without any
//! network access (so a cache copied from another machine works offline); `HF_ENDPOINT`
//! selects another hub server.

use std::path::{Component, Path, PathBuf};

use crate::pipeline::{MANIFEST, PipelineError, PipelineManifest, Result};
use e4e_encoder::bundle::{ENCODER_JSON, ENCODER_WEIGHTS, LATENT_AVG_FILE};
use hyperstyle_refiner::bundle::{REFINER_JSON, REFINER_WEIGHTS};

/// `rel` resolved against the repo folder `base` as a repo path with `/` separators; `..` may
/// not leave the repo.
pub fn repo_path(base: &str, rel: &str) -> std::result::Result<String, String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(base).join(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(format!("{rel:?} leaves the repository"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{rel:?} must be a relative path"));
            }
        }
    }
    Ok(parts.join("/"))
}

/// Downloads `pipeline.json` of `repo_id` at `subfolder` and every file it names; returns the
/// local folder of `pipeline.json` (in the hub cache).
pub fn fetch_pipeline(repo_id: &str, subfolder: &str) -> Result<PathBuf> {
    let hub_err = |message: String| PipelineError::Hub {
        repo: repo_id.to_string(),
        message,
    };
    // `ApiBuilder::from_env` honours HF_HOME and HF_ENDPOINT (`Api::new` ignores both).
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .build()
        .map_err(|e| hub_err(e.to_string()))?;
    let repo = api.model(repo_id.to_string());
    let get = |rel: &str| -> Result<PathBuf> {
        let path = repo_path(subfolder, rel).map_err(hub_err)?;
        repo.get(&path)
            .map_err(|e| hub_err(format!("downloading {path}: {e}")))
    };
    let manifest_path = get(MANIFEST)?;
    let manifest = PipelineManifest::read(&manifest_path)?;
    get(&manifest.generator)?;
    let json = Path::new(&manifest.generator).with_extension("json");
    get(&json.to_string_lossy())?;
    for f in [ENCODER_WEIGHTS, ENCODER_JSON, LATENT_AVG_FILE] {
        get(&format!("{}/{f}", manifest.encoder))?;
    }
    if let Some(r) = &manifest.refiner {
        for f in [REFINER_WEIGHTS, REFINER_JSON] {
            get(&format!("{r}/{f}"))?;
        }
    }
    if let Some(sel) = &manifest.select {
        use sketch_synth::solov2::export::{INFO_FILE, WEIGHTS_FILE};
        for f in [WEIGHTS_FILE, INFO_FILE] {
            get(&format!("{}/{f}", sel.segmenter))?;
        }
    }
    Ok(manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::repo_path;

    #[test]
    fn repo_paths_resolve_inside_the_repo_only() {
        assert_eq!(
            repo_path(
                "sketch2medi_phantom64",
                "../stylegan2_phantom64/generator.safetensors"
            )
            .unwrap(),
            "stylegan2_phantom64/generator.safetensors"
        );
        assert_eq!(repo_path("", "./pipeline.json").unwrap(), "pipeline.json");
        assert_eq!(repo_path("a/b", "c/../d.json").unwrap(), "a/b/d.json");
        assert!(repo_path("a", "../../x").is_err());
        assert!(repo_path("", "/etc/passwd").is_err());
    }
}
